"""Adapters on the live base model: activate / swap / deactivate with PEFT, without reloading the base.

The first activation wraps the base in a `PeftModelForCausalLM`; later ones `load_adapter` into it and
`set_adapter`. Several adapters stay loaded (swapping between loaded ones is a `set_adapter` call).
"Base only" keeps the wrapper but disables the adapter layers in place, so *every* caller sees the base,
even one that runs `lm.base_model` directly. Every model-touching call holds the ModelStore lock.

Generation paths in other tabs should wrap their forward/generate calls in `generation_context(lm)`
(a no-op unless a PEFT wrapper exists with no active adapter) and use `base_context(lm)` for an explicit
"adapter disabled" pass (e.g. the base curve of a base-vs-tuned chart).
"""

from __future__ import annotations

import contextlib
import re
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.adapters.library import (
    WEIGHTS_FILE,
    AdapterError,
    AdapterInfo,
    AdapterLibrary,
    check_adapter_files,
    detail_markdown,
    library_rows,
)
from playground.adapters.mixing import BaseFacts, MixSpec, merge_into_copy, save_mixed_adapter
from playground.adapters.archive import export_zip, import_zip
from playground.model.store import LoadedModel, ModelStore

_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\."
                       r"(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$")


def _is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@contextlib.contextmanager
def base_context(lm: LoadedModel) -> Iterator[None]:
    """Run the block on the base model: adapters disabled with PEFT's `disable_adapter()` if any are loaded."""
    if _is_peft(lm.model) and lm.model.peft_config:
        with lm.model.disable_adapter():
            yield
    else:
        yield


def generation_context(lm: LoadedModel) -> contextlib.AbstractContextManager:
    """The context every generation path should run in: the active adapter, or the base when none is active."""
    return base_context(lm) if lm.active_adapter is None else contextlib.nullcontext()


@dataclass
class BaseVsTuned:
    """Next-token probabilities for the same input with the adapter disabled and enabled."""

    base: torch.Tensor  # [vocab], float32 on CPU
    tuned: torch.Tensor | None  # None when no adapter is active
    adapter: str | None


@torch.no_grad()
def next_token_probs_base_vs_tuned(store: ModelStore, input_ids: torch.Tensor) -> BaseVsTuned:
    """Softmax of the last position's logits, base (adapter disabled) and tuned (active adapter)."""
    with store.use() as lm:
        ids = input_ids.to(lm.device)
        ids = ids.unsqueeze(0) if ids.dim() == 1 else ids
        with base_context(lm):
            base = lm.model(input_ids=ids).logits[0, -1].float().softmax(-1).cpu()
        tuned = None
        if lm.active_adapter is not None:
            tuned = lm.model(input_ids=ids).logits[0, -1].float().softmax(-1).cpu()
        return BaseVsTuned(base=base, tuned=tuned, adapter=lm.active_adapter)


def _in_out_features(module: Any) -> tuple[int | None, int | None]:
    base = module.get_base_layer() if hasattr(module, "get_base_layer") else module
    try:
        from peft.tuners.tuners_utils import _get_in_out_features

        return _get_in_out_features(base)
    except (ImportError, ValueError):
        return getattr(base, "in_features", None), getattr(base, "out_features", None)


def check_compatible(info: AdapterInfo, shapes: dict[str, tuple[int, ...]], lm: LoadedModel) -> list[str]:
    """Refuse an adapter made for another base (metadata fingerprint, then every tensor shape); return notes."""
    notes = []
    if info.base_fingerprint and info.base_fingerprint != lm.fingerprint:
        if info.base_model != lm.name:
            raise AdapterError(f"Adapter {info.name!r} was trained on {info.base_model}, but the loaded base model "
                               f"is {lm.name}. Load {info.base_model} in the Model tab to use it.")
        notes.append(f"its base fingerprint differs from {lm.name}'s (another dtype or quantization?); "
                     "the layer shapes match, so it was loaded")
    modules = dict(lm.base_model.named_modules())
    for key, shape in shapes.items():
        m = _LORA_KEY.match(key)
        if m is None:
            continue
        path, part = m["module"], m["part"]
        module = modules.get(path)
        made_for = f"it was made for {info.base_model}"
        if module is None:
            raise AdapterError(f"Adapter {info.name!r} does not fit the loaded base model {lm.name}: {made_for}, "
                               f"and {lm.name} has no layer {path}.")
        n_in, n_out = _in_out_features(module)
        want, got = (n_in, shape[1]) if part.endswith("A") else (n_out, shape[0])
        if want is not None and len(shape) > 1 and want != got:
            side = "inputs" if part.endswith("A") else "outputs"
            raise AdapterError(f"Adapter {info.name!r} does not fit the loaded base model {lm.name}: {made_for}. "
                               f"Layer {path} has {want} {side} in {lm.name}, the adapter expects {got}.")
    return notes


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
        if not _is_peft(lm.model):
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
        peft = lm.model if _is_peft(lm.model) else None
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
        if not _is_peft(peft) or key not in peft.peft_config:
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
        if _is_peft(peft) and peft.peft_config:
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

    def infos(self) -> list[AdapterInfo]:
        return self.library.list()

    def summaries(self) -> list[dict]:
        """Library metadata plus loaded/active state (the /adapters endpoint)."""
        loaded, active = set(self.loaded_names()), self.active()
        return [{**i.summary(), "loaded": i.name in loaded, "active": i.name == active} for i in self.infos()]

    def table(self) -> list[list]:
        return library_rows(self.infos(), set(self.loaded_names()), self.active())

    def detail(self, name: str) -> tuple[AdapterInfo, str]:
        info = self.library.get(name)
        return info, detail_markdown(info, name in self.loaded_names(), name == self.active())

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
            peft, infos = lm.model, [self.library.get(n) for n in spec.names]
            key = self._new_key(peft)
            try:
                started = time.perf_counter()
                peft.add_weighted_adapter(keys, list(spec.weights), key, combination_type=spec.method)
                info = save_mixed_adapter(self.library, peft, key, spec, infos, lm, time.perf_counter() - started)
            except Exception as err:
                if key in peft.peft_config:
                    peft.delete_adapter(key)
                self._apply(lm, lm.active_adapter)
                if isinstance(err, AdapterError):
                    raise
                raise AdapterError(f"PEFT could not mix these adapters with {spec.method!r}: {err}") from err
            self._loaded[info.name] = _Loaded(key, _stamp(info.path), time.monotonic())
            self._apply(lm, lm.active_adapter)  # new layers start enabled; restore base-only if that was the state
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
