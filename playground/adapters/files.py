"""The on-disk form of a saved adapter, shared by training (kind "trained") and the Adapters tab (mixes).

`<data-dir>/adapters/<name>/` holds the standard PEFT files (`adapter_config.json`,
`adapter_model.safetensors`) plus `playground.json` with where it came from. The folder is written to a temp
dir and renamed in one step, so a crash never leaves half an adapter.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from playground.fsutil import atomic_dir, unique_name, validate_name, write_json_atomic

META_FILE = "playground.json"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def resolve_adapter_name(adapters_dir: Path, name: str, overwrite: bool = False) -> str:
    """Validated name; a taken one gets a `-2`, `-3`… suffix unless overwriting."""
    name = validate_name(name, "adapter name")
    return name if overwrite else unique_name(adapters_dir, name)


def save_adapter_folder(adapters_dir: Path, name: str, model: Any, meta: dict[str, Any], *,
                        adapter_name: str = "default", overwrite: bool = False) -> Path:
    """Write `model`'s adapter `adapter_name` (a peft.PeftModel) to `adapters_dir/<name>/` with `meta` as
    playground.json. A taken `name` gets a suffix unless `overwrite`. `meta["name"]` is set to the final name
    and `meta["created_at"]` is filled in when missing. Returns the folder."""
    tries = 4  # another save can take the free name while this one writes: then take the next one
    for attempt in range(tries):
        try:
            return _save_as(adapters_dir, resolve_adapter_name(adapters_dir, name, overwrite), model, meta,
                            adapter_name, overwrite)
        except FileExistsError:
            if overwrite or attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _save_as(adapters_dir: Path, final: str, model: Any, meta: dict[str, Any], adapter_name: str,
             overwrite: bool) -> Path:
    target = adapters_dir / final
    with atomic_dir(target, overwrite=overwrite) as tmp:
        staging = tmp / ".peft"
        model.save_pretrained(str(staging), safe_serialization=True, selected_adapters=[adapter_name])
        # PEFT writes a non-"default" adapter into a sub-folder named after it; flatten to the standard layout.
        written = staging / adapter_name if adapter_name != "default" else staging
        for item in written.iterdir():
            if item.is_file():
                shutil.move(str(item), tmp / item.name)
        shutil.rmtree(staging)
        if not (tmp / "adapter_model.safetensors").is_file():
            raise RuntimeError("PEFT did not write adapter_model.safetensors.")
        write_json_atomic(tmp / META_FILE, {**meta, "name": final, "created_at": meta.get("created_at") or now_iso()})
    return target
