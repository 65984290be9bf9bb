"""Adapters on the live base model: activate / swap / deactivate with PEFT, without reloading the base.

The first activation wraps the base in a `PeftModelForCausalLM`; later ones `load_adapter` into it and
`set_adapter`. Several adapters stay loaded (swapping between loaded ones is a `set_adapter` call).
"Base only" keeps the wrapper but disables the adapter layers in place, so *every* caller sees the base,
even one that runs `lm.base_model` directly. Every model-touching call holds the ModelStore lock.

Generation paths run in `generation_context(lm)` / `base_context(lm)` (playground.adapters.context; imported
here too for the callers that have always found them in this module).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.adapters.archive import export_zip, import_zip
from playground.adapters.compat import check_compatible
from playground.adapters.context import (  # noqa: F401  (base_context & co. are re-exported)
    BaseVsTuned,
    base_context,
    generation_context,
    is_peft,
    next_token_probs_base_vs_tuned,
)
from playground.adapters.library import WEIGHTS_FILE, AdapterError, AdapterInfo, AdapterLibrary, check_adapter_files
from playground.adapters.mixing import BaseFacts, MixSpec, add_weighted_mix, merge_into_copy
from playground.adapters.views import LibraryState
from playground.model.anatomy import adapter_parameter_counts
from playground.model.store import LoadedModel, ModelStore


@dataclass
class _Loaded:
    key: str  # PEFT adapter name: internal, because library names may contain '.' (not allowed by PEFT)
    stamp: tuple[int, int]  # (mtime_ns, size) of the weights file when loaded
    used: float


def _stamp(folder: Path) -> tuple[int, int]:
    st = (folder / WEIGHTS_FILE).stat()
    return st.st_mtime_ns, st.st_size


class AdapterManager:
    """Owns which library adapters are loaded into the live model and which one is active."""

    def __init__(self, store: ModelStore, library: AdapterLibrary, data_dir: Path, max_loaded: int = 8):
        self.store, self.library, self.data_dir, self.max_loaded = store, library, data_dir, max_loaded
        self._loaded: dict[str, _Loaded] = {}
        self._base_ref: weakref.ref | None = None
        self._counter = 0
        self.last_notes: list[str] = []

    @classmethod
    def for_data_dir(cls, store: ModelStore, data_dir: Path) -> "AdapterManager":
        return cls(store, AdapterLibrary(data_dir / "adapters"), data_dir)

    # ------------------------------------------------------------ state

    def _sync(self, lm: LoadedModel) -> None:
        """Forget loaded adapters when the base model object changed (a model switch)."""
        if self._base_ref is None or self._base_ref() is not lm.base_model:
            self._loaded.clear()
            self._base_ref = weakref.ref(lm.base_model)
        if not is_peft(lm.model):
            self._loaded.clear()
        else:  # drop names whose PEFT adapter vanished (e.g. removed by someone else)
            for name in [n for n, s in self._loaded.items() if s.key not in lm.model.peft_config]:
                del self._loaded[name]

    def loaded_names(self) -> list[str]:
        """Adapters loaded in the live model. Lock-free (a display snapshot), so listing the library never
        waits for a running generation."""
        if not self.store.loaded or self._base_ref is None or self._base_ref() is not self.store.current.base_model:
            return []
        return list(self._loaded)

    def active(self) -> str | None:
        return self.store.current.active_adapter if self.store.loaded else None

    def stamp(self) -> str:
        """Changes whenever anything an adapter list or header shows may have changed: the model or active
        adapter (store.revision), which adapters are loaded, or the library on disk (also when a training
        worker saves one). Lock-free and cheap, so every open page can poll it."""
        facts = (self.store.revision, self.active(), tuple(sorted(self.loaded_names())), self.library.stamp())
        return hashlib.sha1(repr(facts).encode()).hexdigest()[:16]

    def loaded_sizes(self) -> list[tuple[str, int, bool]]:
        """(name, parameters it adds, active) for every adapter loaded into the live model."""
        with self.store.use() as lm:
            self._sync(lm)
            counts = adapter_parameter_counts(lm.model) if is_peft(lm.model) else {}
            return [(name, counts.get(slot.key, 0), name == lm.active_adapter) for name, slot in self._loaded.items()]

    def _new_key(self, peft: Any) -> str:
        while True:
            self._counter += 1
            key = f"pg{self._counter}"
            if peft is None or key not in peft.peft_config:
                return key

    def _ensure_loaded(self, lm: LoadedModel, name: str) -> str:
        """Load `name` into the live model if needed (after all checks); return its PEFT key. Lock held."""
        from peft import LoraConfig, PeftModelForCausalLM

        self._sync(lm)
        folder = self.library.folder(name)  # validates the name
        slot = self._loaded.get(name)
        if slot is not None and (folder / WEIGHTS_FILE).is_file() and slot.stamp == _stamp(folder):
            slot.used = time.monotonic()  # fast path: already loaded and unchanged on disk
            return slot.key
        info = self.library.get(name)
        shapes = check_adapter_files(info.path, full=True)
        self.last_notes = check_compatible(info, shapes, lm)
        if slot is not None:  # the files changed on disk since it was loaded (e.g. retrained): reload
            self._loaded.pop(name, None)
            self._unload_key(lm, slot.key)
        self._evict(lm)
        peft = lm.model if is_peft(lm.model) else None
        key = self._new_key(peft)
        try:
            if peft is None:  # what PeftModel.from_pretrained does, with a handle to undo a failed load
                config = LoraConfig.from_pretrained(str(info.path))
                config.inference_mode = True
                peft = PeftModelForCausalLM(lm.model, config, key)
                try:
                    peft.load_adapter(str(info.path), adapter_name=key)
                except BaseException:
                    peft.unload()  # strip the injected layers: the base stays exactly as it was
                    raise
                peft.eval()
                peft.base_model.disable_adapter_layers()  # nothing active until _apply says so
                self.store.set_model(peft, lm.active_adapter)
            else:
                try:
                    peft.load_adapter(str(info.path), adapter_name=key)
                except BaseException:
                    if key in peft.peft_config:
                        peft.delete_adapter(key)
                    raise
        except AdapterError:
            raise
        except Exception as err:  # PEFT's own checks: turn them into a sentence
            raise AdapterError(f"Adapter {name!r} could not be loaded into {lm.name}: {err}") from err
        self._loaded[name] = _Loaded(key, _stamp(info.path), time.monotonic())
        self._apply(lm, lm.active_adapter)  # keep the visible state as it was
        return key

    def _evict(self, lm: LoadedModel) -> None:
        """Keep at most max_loaded adapters in memory: drop the least recently used inactive one."""
        idle = [n for n in self._loaded if n != lm.active_adapter]
        while len(self._loaded) >= self.max_loaded and idle:
            oldest = min(idle, key=lambda n: self._loaded[n].used)
            idle.remove(oldest)
            self._unload_key(lm, self._loaded.pop(oldest).key)

    def _unload_key(self, lm: LoadedModel, key: str) -> None:
        peft = lm.model
        if not is_peft(peft) or key not in peft.peft_config:
            return
        if len(peft.peft_config) == 1:  # the last adapter: remove the wrapper, back to the plain base
            self.store.set_model(peft.unload(), None)
            self._loaded.clear()
        else:
            if key in peft.active_adapters:  # hand "active" to another adapter first (no PEFT warning)
                peft.set_adapter(next(k for k in peft.peft_config if k != key), inference_mode=True)
            peft.delete_adapter(key)

    def _apply(self, lm: LoadedModel, name: str | None) -> None:
        """Make `name` (loaded) the active adapter, or the base when None; updates the header via set_model."""
        peft = lm.model
        if name is not None and name not in self._loaded:
            name = None  # not loaded by this manager (e.g. set by another component): fall back to the base
        if is_peft(peft) and peft.peft_config:
            if name is None:
                peft.set_adapter(next(iter(peft.peft_config)), inference_mode=True)
                peft.base_model.disable_adapter_layers()
            else:
                peft.base_model.enable_adapter_layers()
                peft.set_adapter(self._loaded[name].key, inference_mode=True)
        if name != lm.active_adapter or peft is not self.store.current.model:
            self.store.set_model(peft, name)

    # ------------------------------------------------------------ activation

    def activate(self, name: str) -> str:
        """Make a library adapter the active one; returns a status sentence."""
        with self.store.use() as lm:
            self._ensure_loaded(lm, name)
            self._apply(lm, name)
            notes = f" Note: {'; '.join(self.last_notes)}." if self.last_notes else ""
            self.last_notes = []
            return f"Adapter **{name}** is active on {lm.name}.{notes}"

    def deactivate(self) -> str:
        with self.store.use() as lm:
            self._sync(lm)
            self._apply(lm, None)
            return f"Base model only: no adapter is active on {lm.name}."

    def set_active(self, name: str | None) -> str:
        """Activate `name`, or go back to the base for '' / None (the /adapter_activate endpoint)."""
        return self.activate(name.strip()) if name and name.strip() else self.deactivate()

    @contextlib.contextmanager
    def using(self, name: str | None) -> Iterator[LoadedModel]:
        """Hold the lock and run the block with adapter `name` (None = base), restoring the active one after."""
        with self.store.use() as lm:
            previous = lm.active_adapter
            if name == previous:
                with generation_context(lm):
                    yield lm
            elif name is None:
                with base_context(lm):
                    yield lm
            else:
                key = self._ensure_loaded(lm, name)
                peft = lm.model
                peft.base_model.enable_adapter_layers()
                peft.set_adapter(key, inference_mode=True)
                try:
                    yield lm
                finally:
                    self._apply(lm, previous)

    # ------------------------------------------------------------ library operations

    def state(self) -> LibraryState:
        """The library on disk with each adapter's loaded / active state (the tables and the /adapters API)."""
        return LibraryState(self.library.list(), frozenset(self.loaded_names()), self.active())

    def delete(self, name: str) -> str:
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

    def rename(self, old: str, new: str) -> str:
        with self.store.use() as lm:
            self._sync(lm)
            info = self.library.rename(old, new)
            if old in self._loaded:
                self._loaded[new] = self._loaded.pop(old)
            if lm.active_adapter == old:
                self.store.set_model(lm.model, new)
        return f"Renamed **{old}** to **{info.name}**."

    def import_folder(self, folder: str | Path, name: str | None = None) -> AdapterInfo:
        return self.library.import_folder(Path(str(folder).strip()), name)

    def import_zip(self, zip_path: str | Path, name: str | None = None) -> AdapterInfo:
        return import_zip(self.library, Path(zip_path), name)

    def export_zip(self, name: str, out_dir: Path) -> Path:
        return export_zip(self.library.get(name).path, out_dir)

    def mix(self, spec: MixSpec) -> AdapterInfo:
        """A new library adapter from 2+ adapters (PEFT add_weighted_adapter), saved and kept loaded."""
        spec = spec.checked(self.library)
        with self.store.use() as lm:
            keys = [self._ensure_loaded(lm, n) for n in spec.names]
            key = self._new_key(lm.model)
            try:
                info = add_weighted_mix(self.library, lm, keys, key, spec)
            finally:  # new layers start enabled: restore what was active (or base only)
                self._apply(lm, lm.active_adapter)
            self._loaded[info.name] = _Loaded(key, _stamp(info.path), time.monotonic())
            return info

    def merge_and_save(self, out_name: str) -> Path:
        """Merge the active adapter into a separate copy of the base and save it as a plain checkpoint."""
        with self.store.use() as lm:
            if lm.active_adapter is None:
                raise AdapterError("Nothing to merge: no adapter is active. Activate one first.")
            info = self.library.get(lm.active_adapter)
            facts = BaseFacts.of(lm, self.store.settings.trust_remote_code)
        # The slow part runs outside the lock: it never touches the live model.
        return merge_into_copy(info, facts, self.data_dir / "merged", out_name)
