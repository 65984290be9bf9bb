"""What the Adapters tab shows, as plain text and rows (Gradio-free): the library table, the detail card and the
status line after this browser's adapter changed elsewhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playground.adapters.library import AdapterInfo, unknown_adapter

LIBRARY_HEADERS = ["name", "state", "kind", "base model", "dataset", "rank", "targets", "size", "train loss",
                   "eval loss", "created"]


def format_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_loss(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "—"


def short_time(iso: str) -> str:
    """'2025-01-01T12:34:56+01:00' -> '2025-01-01 12:34' (the table's width; the card keeps the full stamp)."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(iso or "—")


def state_of(name: str, loaded: set[str], active: str | None) -> str:
    return "active" if name == active else "loaded" if name in loaded else "on disk"


def library_rows(infos: list[AdapterInfo], loaded: set[str], active: str | None) -> list[list]:
    """Rows for the library table (in LIBRARY_HEADERS order); the state is a word, never only a symbol."""
    return [[i.name, state_of(i.name, loaded, active), i.kind, i.base_model, i.dataset_name or "—", i.rank or "—",
             i.target_modules or "—", format_size(i.size_bytes), fmt_loss(i.final_train_loss),
             fmt_loss(i.final_eval_loss), short_time(i.created_at)] for i in infos]


def default_pick(names: list[str], selected: str | None, active: str | None) -> str | None:
    """Which adapter the picker shows after a change: the user's choice if it still exists, else the active one,
    else the newest."""
    if selected in names:
        return selected
    if active in names:
        return active
    return names[0] if names else None


def dataset_text(dataset: Any) -> str:
    """'pig-latin · 694 rows (625 trained on, 69 held out for the eval loss) · sha256 0123456789ab…' from the
    recorded dataset (name, rows, train/eval rows when recorded, sha256)."""
    if not isinstance(dataset, dict) or not dataset:
        return "—"
    parts = [f"`{dataset.get('name') or 'unnamed'}`"]
    if isinstance(dataset.get("rows"), int):
        split = dataset.get("train_rows"), dataset.get("eval_rows")
        held = (f" ({split[0]:,} trained on, {split[1]:,} held out for the eval loss)"
                if all(isinstance(n, int) for n in split) and split[1] else "")
        parts.append(f"{dataset['rows']:,} rows{held}")
    if dataset.get("sha256"):
        parts.append(f"sha256 `{str(dataset['sha256'])[:12]}…`")
    return " · ".join(parts)


def mix_text(mix: dict) -> str:
    """'alpha × 1 + beta × 0.5, method linear' from a mixed adapter's recorded recipe."""
    names, weights = mix.get("adapters") or [], mix.get("weights") or []
    datasets = list(mix.get("datasets") or []) + [None] * len(names)
    terms = " + ".join(f"**{n}** × {w:g}" + (f" (trained on `{d}`)" if d else "")
                       for n, w, d in zip(names, weights, datasets)) or "unknown adapters"
    return f"{terms}, PEFT `add_weighted_adapter` method **{mix.get('method', '?')}**"


def origin_lines(info: AdapterInfo) -> list[str]:
    """How the adapter came to be: trained here (data, time), mixed (from what), or imported."""
    if info.kind == "mixed":
        mix = info.settings.get("mix") if isinstance(info.settings.get("mix"), dict) else {}
        return [f"- **Mixed** (not trained) from {mix_text(mix)}.",
                "- No loss curve: a mix is computed from other adapters' weights, not trained on data."]
    if info.kind == "imported":
        lines = [f"- **Imported**; dataset: {dataset_text(info.dataset)}"]
        if not info.loss_history:
            lines.append("- No loss curve: this adapter came without a training record.")
        return lines
    lines = [f"- **Trained** on {dataset_text(info.dataset)}"]
    if info.meta.get("duration_s") is not None:
        lines.append(f"- **Training time:** {float(info.meta['duration_s']):.1f} s"
                     + (f" · {info.meta['steps']} steps" if info.meta.get("steps") else ""))
    lines.append(f"- **Final train loss:** {fmt_loss(info.final_train_loss)} · **final eval loss:** "
                 f"{fmt_loss(info.final_eval_loss)}")
    if not info.loss_history and not info.eval_history:
        lines.append("- No loss curve: no loss history was recorded with it.")
    return lines


def detail_markdown(info: AdapterInfo, loaded: bool, active: bool) -> str:
    """The detail card: where the adapter came from, its base model and every recorded setting."""
    state = "active" if active else "loaded" if loaded else "on disk"
    lines = [f"### {info.name}", f"**{info.kind}** · **{state}**", "",
             f"- **Base model:** `{info.base_model}` (fingerprint `{info.base_fingerprint or 'unknown'}`)",
             *origin_lines(info),
             f"- **Rank:** {info.rank} · **target modules:** {info.target_modules or '—'}",
             f"- **Size on disk:** {format_size(info.size_bytes)} · **created:** {info.created_at}"]
    imported = info.meta.get("import_notes")
    notes = [*info.notes, *(n for n in imported if isinstance(n, str))] if isinstance(imported, list) else info.notes
    if notes:  # fields of playground.json that were of the wrong type (adapters.metadata)
        lines += [f"- **Note:** {n}." for n in notes]
    settings = {k: v for k, v in info.settings.items() if k != "mix"}
    if settings:
        lines.append("\n**Settings**\n")
        lines += [f"- `{k}`: {json.dumps(v, default=str)}" for k, v in sorted(settings.items())]
    return "\n".join(lines)


@dataclass(frozen=True)
class LibraryState:
    """One consistent snapshot of the library on disk and which adapters are loaded / active."""

    infos: list[AdapterInfo]
    loaded: frozenset[str]
    active: str | None

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.infos]

    def rows(self) -> list[list]:
        return library_rows(self.infos, set(self.loaded), self.active)

    def summaries(self) -> list[dict]:
        """Library metadata plus loaded/active state (the /adapters endpoint)."""
        return [{**i.summary(), "loaded": i.name in self.loaded, "active": i.name == self.active}
                for i in self.infos]

    def info(self, name: str) -> AdapterInfo:
        for i in self.infos:
            if i.name == name:
                return i
        raise unknown_adapter(name, self.names)

    def detail(self, name: str) -> str:
        """The detail card of `name` (AdapterError with the known names when there is none)."""
        info = self.info(name)
        return detail_markdown(info, name in self.loaded, name == self.active)


def session_moved(old: str | None, now: str | None, renamed: str | None, gone: bool, unfit: str | None) -> str:
    """The Adapters tab's status line once this browser's adapter changed under it (a delete, rename or model
    switch elsewhere): the sentence "Adapter X is active in this browser" must not stay on screen. `old`: the
    adapter the line was about (None = the base); `now`: the one this browser runs."""
    runs = f"adapter **{now}**" if now else "the base model (no adapter)"
    if old and renamed and renamed == now:
        return f"The adapter **{old}** was renamed to **{now}** elsewhere: this browser uses it under its new name."
    if old and gone:
        return (f"The adapter **{old}** that was active in this browser was deleted elsewhere: this browser now "
                f"runs {runs}.")
    if old and unfit:
        return (f"The adapter **{old}** that was active in this browser does not fit the loaded base model "
                f"({unfit}): this browser now runs {runs}.")
    return f"This browser now runs {runs} (before: {f'adapter **{old}**' if old else 'the base model'})."

