"""The adapter library's operations that touch the live model too: list with loaded/active state, delete,
rename, import / export, mix and merge. A mixin of AdapterManager (adapters.live), which owns the lock-held
switching these rely on (`_ensure_loaded`, `_apply`, `_unload_key`, `_sync`, `_new_key`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from playground.adapters.archive import export_zip, import_zip
from playground.adapters.compat import check_compatible
from playground.adapters.library import WEIGHTS_FILE, AdapterError, AdapterInfo, check_adapter_files
from playground.adapters.mixing import (
    BaseFacts,
    MixSpec,
    add_weighted_mix,
    merge_into_copy,
)
from playground.adapters.views import LibraryState

if TYPE_CHECKING:
    from playground.adapters.live import AdapterManager


RENAMES_KEPT = 64  # old → new names remembered for browsers that still hold an old one


@dataclass
class Loaded:
    """One library adapter loaded into the live PEFT model."""

    key: str  # PEFT adapter name: internal, because library names may contain '.' (not allowed by PEFT)
    stamp: tuple[int, int]  # (mtime_ns, size) of the weights file when loaded
    used: float
    notes: tuple[str, ...] = ()  # what the compatibility check said about this adapter on this base


def weights_stamp(folder: Path) -> tuple[int, int]:
    st = (folder / WEIGHTS_FILE).stat()
    return st.st_mtime_ns, st.st_size


class LibraryOperations:
    def state(self: "AdapterManager", active: str | None = None, session: bool = False) -> LibraryState:
        """The library on disk with each adapter's loaded / active state (the tables and the /adapters API);
        with `session`, `active` is the browser session's own adapter instead of the server's."""
        shown = active if session else self.active()
        return LibraryState(self.library.list(), frozenset(self.loaded_names()), shown)

    def unfit(self: "AdapterManager", name: str) -> str | None:
        """Why adapter `name` cannot run on the loaded base (gone from the library, or made for another base), or
        None when it can. Lock-free: reads only the library and the weights' header (tensor shapes)."""
        if not self.store.loaded:
            return None
        try:
            info = self.library.get(name)
            check_compatible(info, check_adapter_files(info.path, full=False), self.store.current)
        except AdapterError as err:
            return str(err)
        return None

    def delete(self: "AdapterManager", name: str) -> str:
        """Delete from disk; an active adapter is deactivated first and every loaded copy is dropped."""
        self.library.get(name)  # clear error for unknown names before touching anything
        with self.store.use() as lm:
            self._sync(lm)
            if lm.active_adapter == name:
                self._apply(lm, None)
            slot = self._loaded.pop(name, None)
            if slot is not None:
                self._unload_key(lm, slot.key)
            self.library.delete(name)
        return f"Deleted adapter **{name}**."

    def rename(self: "AdapterManager", old: str, new: str) -> str:
        with self.store.use() as lm:
            self._sync(lm)
            info = self.library.rename(old, new)
            if old in self._loaded:
                self._loaded[new] = self._loaded.pop(old)
            if lm.active_adapter == old:
                self.store.set_model(lm.model, new)
            self._renamed.pop(info.name, None)  # a name in use again is no longer a forwarding address
            self._renamed[old] = info.name
            while len(self._renamed) > RENAMES_KEPT:  # oldest first: dicts keep insertion order
                del self._renamed[next(iter(self._renamed))]
        return f"Renamed **{old}** to **{info.name}**."

    def renamed_to(self: "AdapterManager", old: str) -> str | None:
        """The library name adapter `old` has now, following renames (a → b → c), or None when it was not
        renamed or its last name is gone too: so a browser whose pick was renamed keeps running it."""
        name, seen = old, {old}
        while name in self._renamed and self._renamed[name] not in seen:
            name = self._renamed[name]
            seen.add(name)
        return name if name != old and name in self.library.names() else None

    def import_folder(self: "AdapterManager", folder: str | Path, name: str | None = None) -> AdapterInfo:
        return self.library.import_folder(Path(str(folder).strip()), name)

    def import_zip(self: "AdapterManager", zip_path: str | Path, name: str | None = None) -> AdapterInfo:
        return import_zip(self.library, Path(zip_path), name)

    def export_zip(self: "AdapterManager", name: str, out_dir: Path) -> Path:
        return export_zip(self.library.get(name).path, out_dir)

    def mix(self: "AdapterManager", spec: MixSpec) -> AdapterInfo:
        """A new library adapter from 2+ adapters (PEFT add_weighted_adapter), saved and kept loaded."""
        spec = spec.checked(self.library)
        with self.store.use() as lm:
            keys = [self._ensure_loaded(lm, n) for n in spec.names]
            key = self._new_key(lm.model)
            try:
                info = add_weighted_mix(self.library, lm, keys, key, spec)
            finally:  # new layers start enabled: restore what was active (or base only)
                self._apply(lm, lm.active_adapter)
            self._loaded[info.name] = Loaded(key, weights_stamp(info.path), time.monotonic())
            return info

    def merge_and_save(self: "AdapterManager", out_name: str, name: str | None = None) -> Path:
        """Merge adapter `name` (default: the server's active one) into a separate copy of the base, saved as a
        plain checkpoint. The slow part runs outside the lock: it never touches the live model."""
        with self.store.use() as lm:
            name = name or lm.active_adapter
            if name is None:
                raise AdapterError("Nothing to merge: no adapter is active. Activate one first.")
            info, facts = self.library.get(name), BaseFacts.of(lm, self.store.settings.trust_remote_code)
        return merge_into_copy(info, facts, self.data_dir / "merged", out_name)
