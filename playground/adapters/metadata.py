"""Reading an adapter's playground.json defensively: an imported or hand-edited file may hold any JSON, and one
bad field must not break the library list for every browser. Each field of the wrong type is left out with a
note (shown on the adapter's card) instead of raising."""

from __future__ import annotations

import math
from typing import Any

TEXT_FIELDS = ("name", "kind", "base_model", "base_source", "base_fingerprint", "created_at", "run_id")
NUMBER_FIELDS = ("final_train_loss", "final_eval_loss", "duration_s", "steps")
OBJECT_FIELDS = ("settings", "dataset")
HISTORY_FIELDS = ("loss_history", "eval_history")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _kind(x: Any) -> str:
    return "an object" if isinstance(x, dict) else "a list" if isinstance(x, list) else f"{type(x).__name__} {x!r:.40}"


def clean_meta(meta: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(a copy of `meta` with every field of the wrong type left out, one note a field). History rows must be
    objects with a numeric `step` (the loss chart's x axis); others are dropped and counted in a note."""
    out, notes = dict(meta), []

    def drop(key: str, want: str) -> None:
        notes.append(f"`{key}` in playground.json is {_kind(out.pop(key))}, not {want}: ignored")

    for key in TEXT_FIELDS:
        if out.get(key) is not None and not isinstance(out[key], str):
            drop(key, "text")
    for key in NUMBER_FIELDS:
        if out.get(key) is not None and not _number(out[key]):
            drop(key, "a number")
    for key in OBJECT_FIELDS:
        if out.get(key) is not None and not isinstance(out[key], dict):
            drop(key, "an object")
    for key in HISTORY_FIELDS:
        rows = out.get(key)
        if rows is None:
            continue
        if not isinstance(rows, list):
            drop(key, "a list of {step, …} rows")
            continue
        kept = [r for r in rows if isinstance(r, dict) and _number(r.get("step"))]
        if len(kept) < len(rows):
            notes.append(f"{len(rows) - len(kept)} of {len(rows)} `{key}` rows in playground.json have no numeric "
                         "`step`: left out")
        out[key] = kept
    return out, notes
