"""Adapters on the live base model: activate / swap / deactivate with PEFT, without reloading the base.

The first activation wraps the base in a `PeftModelForCausalLM`; later ones `load_adapter` into it and
`set_adapter`. Several adapters stay loaded (swapping between loaded ones is a `set_adapter` call).
"Base only" keeps the wrapper but disables the adapter layers in place, so *every* caller sees the base,
even one that runs `lm.base_model` directly. Every model-touching call holds the ModelStore lock.

Generation paths run in `generation_context(lm)` / `base_context(lm)` (adapters.context, re-exported here).
A browser session's own adapter runs through `using(name)` / `view(name)` (adapters.session).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from playground.adapters.compat import check_compatible
from playground.adapters.context import (  # noqa: F401  (base_context & co. are re-exported)
    BaseVsTuned,
    base_context,
    generation_context,
    is_peft,
    next_token_probs_base_vs_tuned,
)
from playground.adapters.library import (
    WEIGHTS_FILE,
    AdapterError,
    AdapterLibrary,
    check_adapter_files,
)
from playground.adapters.library_ops import LibraryOperations, Loaded, weights_stamp
from playground.adapters.session import AdapterView
from playground.model.anatomy import adapter_parameter_counts
from playground.model.store import LoadedModel, ModelStore
from playground.model.turns import Urgency


def name_argument(name: Any, field: str = "name") -> str | None:
    """An API caller's adapter name: text or nothing. Any other JSON (5, ["a1"]) is refused with a sentence
    naming the parameter, not an AttributeError deep in the library."""
    if name is not None and not isinstance(name, str):
        raise AdapterError(f"{field} must be an adapter's name as text (got {name!r}).")
    return name


class AdapterManager(LibraryOperations):
    """Owns which library adapters are loaded into the live model and which one is active."""

    def __init__(self, store: ModelStore, library: AdapterLibrary, data_dir: Path, max_loaded: int = 8):
        self.store, self.library, self.data_dir, self.max_loaded = store, library, data_dir, max_loaded
        self._loaded: dict[str, Loaded] = {}
        self._base_ref: weakref.ref | None = None
        self._counter = 0
        self._held: Counter[str] = Counter()  # adapters a using() block runs (maybe paused): never evicted
        self._renamed: dict[str, str] = {}  # old → new adapter name (library_ops.rename), RENAMES_KEPT at most

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
        """The server's default adapter (what sessions that picked none run), also during a session's switch."""
        return self.store.server_adapter()

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
        if slot is not None and (folder / WEIGHTS_FILE).is_file() and slot.stamp == weights_stamp(folder):
            slot.used = time.monotonic()  # fast path: already loaded and unchanged on disk
            return slot.key
        info = self.library.get(name)
        shapes = check_adapter_files(info.path, full=True)
        notes = tuple(check_compatible(info, shapes, lm))
        server = lm.active_adapter  # unloading the last adapter below resets it: put it back at the end
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
        self._loaded[name] = Loaded(key, weights_stamp(info.path), time.monotonic(), notes)
        self._apply(lm, server)  # keep the visible state as it was, also after a reload of the server's adapter
        if slot is not None:  # new weights under the same name: a new revision, so caches keyed on it (Inside's
            self.store.set_model(lm.model, lm.active_adapter)  # lens, Decode's logits) drop the old numbers
        return key

    def _evict(self, lm: LoadedModel) -> None:
        """Keep at most max_loaded adapters in memory: drop the least recently used one that is neither active
        nor held by a using() block (a paused turn switches back to its adapter when it resumes)."""
        idle = [n for n in self._loaded if n != lm.active_adapter and not self._held[n]]
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
        if name is not None and name not in self._loaded:
            name = None  # not loaded by this manager (e.g. set by another component): fall back to the base
        self._switch_layers(lm, name)
        if name != lm.active_adapter or lm.model is not self.store.current.model:
            self.store.set_model(lm.model, name)

    def _switch_layers(self, lm: LoadedModel, name: str | None) -> None:
        """PEFT's side of a switch: `name`'s layers on, or every adapter's layers off for the base."""
        peft = lm.model
        if is_peft(peft) and peft.peft_config:
            if name is None:
                peft.set_adapter(next(iter(peft.peft_config)), inference_mode=True)
                peft.base_model.disable_adapter_layers()
            else:
                peft.base_model.enable_adapter_layers()
                peft.set_adapter(self._loaded[name].key, inference_mode=True)

    # ------------------------------------------------------------ activation

    def activate(self, name: str, session_only: bool = False) -> str:
        """Make a library adapter the server's active one, or with `session_only` load and check it and leave
        the server's default alone (the caller keeps the pick in its browser session); a status sentence."""
        with self.store.use() as lm:
            self._ensure_loaded(lm, name)
            if not session_only:
                self._apply(lm, name)
            said = self._loaded[name].notes  # this adapter's own notes, whoever loaded it first
            notes = f" Note: {'; '.join(said)}." if said else ""
            where = " in this browser" if session_only else ""
            return f"Adapter **{name}** is active{where} on {lm.name}.{notes}"

    def deactivate(self) -> str:
        with self.store.use() as lm:
            self._sync(lm)
            self._apply(lm, None)
            return f"Base model only: no adapter is active on {lm.name}."

    def set_active(self, name: str | None) -> str:
        """Activate `name`, or go back to the base for '' / None (the /adapter_activate endpoint)."""
        name = name_argument(name)
        return self.activate(name.strip()) if name and name.strip() else self.deactivate()

    @contextlib.contextmanager
    def using(self, name: str | None, level: Urgency | None = None) -> Iterator[LoadedModel]:
        """Hold the lock and run the block with adapter `name` (None = base) switched on: `lm.active_adapter`
        says `name` inside. The server's default comes back after without a revision change: a browser
        session's own pick (adapters.session) is not a change of the server's state. `level`: see store.use()."""
        with self.store.reading(level) as lm:
            previous = lm.active_adapter
            if name is not None:  # also when it is already on: its files may have changed (a retrain, Overwrite)
                self._ensure_loaded(lm, name)
            with self._holding(name):
                if name == previous:
                    # Nothing to put back if this call gives way to another: on the base every adapter's layers
                    # are off already (_switch_layers), and PEFT's disable_adapter() leaves them off on its way out.
                    with generation_context(lm):
                        yield lm
                    return
                restore = previous if previous in self._loaded else None
                with self.store.switched_adapter(name):
                    try:
                        self._switch_layers(lm, name)
                        with self.store.keeping(lambda: self._switch_layers(lm, restore),
                                                lambda: self._switch_layers(lm, name)):
                            yield lm
                    finally:
                        self._switch_layers(lm, restore)

    @contextlib.contextmanager
    def _holding(self, name: str | None) -> Iterator[None]:
        """Mark `name` as in use for the block, so another call's load cannot evict it (see _evict)."""
        if name is not None:
            self._held[name] += 1
        try:
            yield
        finally:
            if name is not None:
                self._held[name] -= 1
                if not self._held[name]:
                    del self._held[name]

    def view(self, name: str | None) -> AdapterView:
        """The model as a session with adapter `name` sees it (see adapters.session)."""
        return AdapterView(self, name)
