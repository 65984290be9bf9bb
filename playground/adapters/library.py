"""The on-disk adapter library: `<data-dir>/adapters/<name>/` folders, their metadata, import and removal.

A saved adapter is a standard PEFT folder (`adapter_config.json`, `adapter_model.safetensors`) plus our
`playground.json` (who made it, on which base, with which data and settings, its loss history).
Nothing here touches the live model; `playground.adapters.AdapterManager` does that.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from playground.adapters.files import META_FILE, now_iso
from playground.adapters.metadata import clean_meta
from playground.fsutil import atomic_dir, unique_name, validate_name, write_json_atomic

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_FILE = "adapter_model.bin"
KINDS = ("trained", "mixed", "imported")


class AdapterError(ValueError):
    """An adapter operation failed for a reason the user can act on; the message is shown as is."""


@dataclass
class AdapterInfo:
    """One library entry: the folder name is the adapter's name; everything else comes from its files."""

    name: str
    path: Path
    kind: str
    base_model: str
    base_fingerprint: str | None
    dataset: dict | None
    settings: dict
    size_bytes: int
    final_train_loss: float | None = None
    final_eval_loss: float | None = None
    created_at: str = ""
    loss_history: list[dict] = field(default_factory=list)
    eval_history: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # playground.json fields of the wrong type, left out

    @property
    def rank(self) -> int | None:
        return self.settings.get("r")

    @property
    def target_modules(self) -> str:
        mods = self.settings.get("target_modules")
        if isinstance(mods, (list, tuple, set)):
            return ", ".join(sorted(str(m) for m in mods))
        return str(mods or "")

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name", "")) if isinstance(self.dataset, dict) else ""

    def summary(self) -> dict[str, Any]:
        """JSON-friendly metadata (the /adapters API answer)."""
        return {"name": self.name, "kind": self.kind, "base_model": self.base_model,
                "base_fingerprint": self.base_fingerprint, "dataset": self.dataset, "rank": self.rank,
                "target_modules": self.settings.get("target_modules"), "size_bytes": self.size_bytes,
                "final_train_loss": self.final_train_loss, "final_eval_loss": self.final_eval_loss,
                "created_at": self.created_at, "settings": self.settings}


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def check_adapter_files(folder: Path, full: bool = True) -> dict[str, tuple[int, ...]]:
    """Check that `folder` is a loadable LoRA adapter; return {tensor key: shape}.

    Only safetensors are accepted: a pickle `.bin` can run arbitrary code when loaded. With `full`, every
    tensor is read, so a truncated or corrupted file is caught here and not halfway through a PEFT load.
    """
    from safetensors import SafetensorError, safe_open

    if not folder.is_dir():
        raise AdapterError(f"{folder} is not a folder.")
    config = _read_json(folder / CONFIG_FILE)
    if config is None:
        raise AdapterError(f"{folder.name} has no readable {CONFIG_FILE}: it is not a PEFT adapter folder.")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterError(f"{folder.name} is a {config.get('peft_type') or 'unknown'} adapter; only LoRA "
                           "adapters are supported.")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        if (folder / PICKLE_FILE).is_file():
            raise AdapterError(f"{folder.name} only has {PICKLE_FILE}, a pickle file. Pickle files can run "
                               "arbitrary code when loaded, so only safetensors adapters are accepted. Convert it "
                               "with PEFT where you trust it (load, then save_pretrained with safe_serialization).")
        raise AdapterError(f"{folder.name} has no {WEIGHTS_FILE}.")
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                shapes[key] = tuple(f.get_slice(key).get_shape())
                if full:
                    f.get_tensor(key)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise AdapterError(f"{folder.name}/{WEIGHTS_FILE} is corrupted or truncated ({err}).") from err
    if not shapes:
        raise AdapterError(f"{folder.name}/{WEIGHTS_FILE} holds no tensors.")
    return shapes


def read_info(folder: Path) -> AdapterInfo:
    """Metadata of one adapter folder; an adapter without playground.json is described from its PEFT config."""
    meta, notes = clean_meta(_read_json(folder / META_FILE) or {})  # a bad field is a note, never a crash
    config = _read_json(folder / CONFIG_FILE) or {}
    settings = dict(meta.get("settings") or {})
    for key in ("r", "lora_alpha", "target_modules"):
        if settings.get(key) is None and config.get(key) is not None:
            settings[key] = config[key]
    created = meta.get("created_at") or datetime.fromtimestamp(
        folder.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return AdapterInfo(
        name=folder.name, path=folder, kind=meta.get("kind") if meta.get("kind") in KINDS else "imported",
        base_model=meta.get("base_model") or config.get("base_model_name_or_path") or "unknown",
        base_fingerprint=meta.get("base_fingerprint"), dataset=meta.get("dataset"), settings=settings,
        size_bytes=_folder_size(folder), final_train_loss=meta.get("final_train_loss"),
        final_eval_loss=meta.get("final_eval_loss"), created_at=str(created),
        loss_history=list(meta.get("loss_history") or []), eval_history=list(meta.get("eval_history") or []),
        meta=meta, notes=notes)


def metadata_from_config(name: str, folder: Path) -> dict:
    """A CONTRACT playground.json for an imported adapter that came without one."""
    config = _read_json(folder / CONFIG_FILE) or {}
    return {"name": name, "kind": "imported", "base_model": config.get("base_model_name_or_path") or "unknown",
            "base_source": config.get("base_model_name_or_path"), "base_fingerprint": None, "dataset": None,
            "settings": {k: config.get(k) for k in ("r", "lora_alpha", "target_modules", "lora_dropout")},
            "loss_history": [], "eval_history": [], "final_train_loss": None, "final_eval_loss": None,
            "duration_s": None, "created_at": now_iso(), "run_id": None}


def default_name(raw: str, fallback: str = "adapter") -> str:
    """A valid adapter name derived from a file or folder name (`fallback` when nothing of it is usable)."""
    cleaned = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]+", "-", raw)).strip("-._") or fallback
    return cleaned[:100]


def unknown_adapter(name: str, known: list[str]) -> AdapterError:
    return AdapterError(f"There is no adapter named {name!r} in the library (adapters: "
                        f"{', '.join(known) or 'none yet'}).")


class AdapterLibrary:
    """The folder of saved adapters. All writes are all-or-nothing (temp folder + rename)."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, name: str) -> Path:
        """Path of a (validated) adapter name; raises AdapterError for path tricks like '../x' or 'a/b'."""
        try:
            return self.root / validate_name(name, "adapter name")
        except ValueError as err:
            raise AdapterError(str(err)) from err

    def names(self) -> list[str]:
        return [i.name for i in self.list()]

    def stamp(self) -> tuple:
        """Cheap fingerprint of the library on disk: it changes when an adapter is added (also by a training
        worker process), renamed, deleted or rewritten. Only folder names and two mtimes are read."""
        if not self.root.is_dir():
            return ()
        entries = []
        for d in os.scandir(self.root):
            if d.name.startswith(".") or not d.is_dir():
                continue
            try:
                entries.append((d.name, d.stat().st_mtime_ns, os.stat(os.path.join(d.path, META_FILE)).st_mtime_ns))
            except OSError:  # no metadata (or it vanished meanwhile): the folder's own mtime still counts
                entries.append((d.name, 0, 0))
        return tuple(sorted(entries))

    def list(self) -> list[AdapterInfo]:
        """Every adapter folder (hidden temp/trash folders skipped), newest first."""
        if not self.root.is_dir():
            return []
        infos = [read_info(d) for d in self.root.iterdir()
                 if d.is_dir() and not d.name.startswith(".") and (d / CONFIG_FILE).is_file()]
        return sorted(infos, key=lambda i: (i.created_at, i.name), reverse=True)

    def get(self, name: str) -> AdapterInfo:
        folder = self.folder(name)
        if not (folder / CONFIG_FILE).is_file():
            raise unknown_adapter(name, self.names())
        return read_info(folder)

    def exists(self, name: str) -> bool:
        return self.folder(name).exists()

    @contextmanager
    def create(self, name: str) -> Iterator[Path]:
        """Yield a temp folder that becomes adapters/<name> when the block succeeds (refuses to overwrite)."""
        target = self.folder(name)
        if target.exists():
            raise AdapterError(f"An adapter named {name!r} already exists; choose another name.")
        with atomic_dir(target) as tmp:
            yield tmp

    def import_folder(self, source: Path, name: str | None = None) -> AdapterInfo:
        """Copy a checked adapter folder into the library; metadata is kept (renamed) or built from its config."""
        source = Path(source).expanduser()
        check_adapter_files(source)
        if (source / META_FILE).is_file() and _read_json(source / META_FILE) is None:  # checked before copying
            raise AdapterError(f"{source.name}/{META_FILE} is not a JSON object; fix or remove it and import again.")
        if name and name.strip():
            name = self.folder(name).name  # validated; create() refuses an existing name
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            name = unique_name(self.root, default_name(source.name))
        with self.create(name) as tmp:
            for item in source.iterdir():  # copy only plain files: no symlinks out of the folder
                if item.is_file() and not item.is_symlink() and item.name != PICKLE_FILE:
                    shutil.copy2(item, tmp / item.name)
            meta = _read_json(tmp / META_FILE)
            if meta is None:
                meta = metadata_from_config(name, tmp)
            else:  # fields of the wrong type are left out now, with the notes kept for the card
                meta, notes = clean_meta(meta)
                meta.update(name=name, imported_at=now_iso(), **({"import_notes": notes} if notes else {}))
            write_json_atomic(tmp / META_FILE, meta)
        return self.get(name)

    def rename(self, old: str, new: str) -> AdapterInfo:
        src = self.get(old).path
        dst = self.folder(new)
        if dst.exists():
            raise AdapterError(f"An adapter named {new!r} already exists; choose another name.")
        os.replace(src, dst)  # one atomic step; the metadata name follows
        meta = _read_json(dst / META_FILE) or metadata_from_config(new, dst)
        meta["name"] = new
        write_json_atomic(dst / META_FILE, meta)
        return self.get(new)

    def delete(self, name: str) -> None:
        """Move the folder aside in one rename (so it vanishes at once), then remove it."""
        folder = self.get(name).path
        trash = Path(tempfile.mkdtemp(prefix=f".trash-{name}-", dir=self.root))
        os.replace(folder, trash / name)
        shutil.rmtree(trash, ignore_errors=True)
