"""Mixing adapters into a new one and merging an adapter into a full checkpoint (the PEFT utilities).

`AdapterManager.mix` / `.merge_and_save` hold the model lock and own the live-model state; the checks and
the file writing live here. Merging always works on a separate copy of the base, never the live model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from playground.adapters.files import now_iso, save_adapter_folder
from playground.adapters.library import (
    AdapterError,
    AdapterInfo,
    AdapterLibrary,
    check_adapter_files,
)
from playground.fsutil import atomic_dir, validate_name, write_json_atomic
from playground.model.store import LoadedModel

# The PEFT combination types offered in the UI: linear is cheap (same rank), cat is exact (ranks add up),
# svd is exact up to the rank it truncates to.
MIX_METHODS = ("linear", "cat", "svd")
# A mix weight's range, declared once: the tab's sliders span it and MixSpec.checked refuses any other weight
# (an API weight of 1e308 saved an adapter of inf/NaN tensors). Adapters sit below train: no train.schema here.
MIX_WEIGHT_MIN, MIX_WEIGHT_MAX, MIX_WEIGHT_STEP = -1.0, 2.0, 0.05


@dataclass(frozen=True)
class MixSpec:
    """Which adapters to mix, with which weights, how, and the new adapter's name."""

    names: tuple[str, ...]
    weights: tuple[float, ...]
    new_name: str
    method: str = "linear"

    @classmethod
    def request(cls, names: Any, weights: Any, new_name: Any, method: Any = "linear") -> "MixSpec":
        """An API caller's JSON -> a spec. A wrong type is a sentence naming the parameter (names="a1" is not
        split into the adapters 'a' and '1')."""
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise AdapterError(f'names must be a list of adapter names, e.g. ["a1", "a2"] (got {names!r}).')
        if not isinstance(weights, (list, tuple)):
            raise AdapterError(f"weights must be a list of numbers, one per adapter (got {weights!r}).")
        if new_name is not None and not isinstance(new_name, str):
            raise AdapterError(f"new_name must be text (got {new_name!r}).")
        return cls(tuple(names), tuple(weights), new_name or "", method)

    def checked(self, library: AdapterLibrary) -> "MixSpec":
        """Return a cleaned spec or raise AdapterError with a sentence for the user."""
        names = tuple(str(n).strip() for n in self.names if n and str(n).strip())
        if len(names) < 2:
            raise AdapterError("Choose at least two adapters to mix.")
        if len(set(names)) != len(names):
            raise AdapterError("Each adapter can appear only once in a mix.")
        if len(self.weights) != len(names):
            raise AdapterError(f"{len(names)} adapters need {len(names)} weights, got {len(self.weights)}.")
        try:
            if any(isinstance(w, bool) for w in self.weights):  # JSON true is not the weight 1
                raise TypeError("a boolean")
            weights = tuple(float(w) for w in self.weights)
        except (TypeError, ValueError, OverflowError) as err:  # OverflowError: a JSON integer like 10**400
            raise AdapterError("Every mix weight must be a number.") from err
        if not all(math.isfinite(w) for w in weights):
            raise AdapterError("Every mix weight must be a finite number.")
        outside = [w for w in weights if not MIX_WEIGHT_MIN <= w <= MIX_WEIGHT_MAX]
        if outside:
            raise AdapterError(f"Every mix weight must be between {MIX_WEIGHT_MIN:g} and {MIX_WEIGHT_MAX:g} "
                               f"(got {', '.join(f'{w:g}' for w in outside)}).")
        if all(w == 0 for w in weights):
            raise AdapterError("All mix weights are 0, so the mix would change nothing. Give at least one "
                               "adapter a non-zero weight.")
        if self.method not in MIX_METHODS:
            raise AdapterError(f"Unknown mix method {self.method!r}; choose one of {', '.join(MIX_METHODS)}.")
        if self.method == "linear" and any(w < 0 for w in weights):
            raise AdapterError("The 'linear' method scales each adapter by the square root of its weight, so "
                               "weights must be ≥ 0. Use 'cat' or 'svd' to subtract an adapter.")
        for n in names:
            library.get(n)
        new = library.folder(self.new_name).name
        if library.exists(new):
            raise AdapterError(f"An adapter named {new!r} already exists; choose another name.")
        return MixSpec(names, weights, new, self.method)


def save_mixed_adapter(library: AdapterLibrary, peft: Any, key: str, spec: MixSpec, sources: list[AdapterInfo],
                       lm: LoadedModel, duration_s: float) -> AdapterInfo:
    """Save only the new PEFT adapter `key` as library adapter `spec.new_name` (all-or-nothing)."""
    config = peft.peft_config[key]
    mods = config.target_modules
    meta = {
        "name": spec.new_name, "kind": "mixed", "base_model": lm.name, "base_source": lm.source,
        "base_fingerprint": lm.fingerprint, "dataset": None,
        "settings": {"r": config.r, "lora_alpha": config.lora_alpha,
                     "target_modules": sorted(mods) if isinstance(mods, (set, list, tuple)) else mods,
                     "mix": {"adapters": list(spec.names), "weights": list(spec.weights), "method": spec.method,
                             "datasets": [s.dataset_name or None for s in sources]}},
        "loss_history": [], "eval_history": [], "final_train_loss": None, "final_eval_loss": None,
        "duration_s": round(duration_s, 3), "created_at": now_iso(), "run_id": None,
    }
    folder = save_adapter_folder(library.root, spec.new_name, peft, meta, adapter_name=key)
    return library.get(folder.name)


def refuse_non_finite(peft: Any, key: str, spec: MixSpec) -> None:
    """Refuse a mix whose tensors hold inf / NaN (sources whose weights overflow when combined): saved, it would
    make every next-token probability NaN once active."""
    from peft import get_peft_model_state_dict

    tensors = get_peft_model_state_dict(peft, adapter_name=key)
    bad = sum(not bool(torch.isfinite(t).all()) for t in tensors.values())
    if bad:
        raise AdapterError(f"Mixing {' + '.join(spec.names)} with weights {', '.join(f'{w:g}' for w in spec.weights)} "
                           f"gives inf or NaN values in {bad} of {len(tensors)} tensors, so nothing was saved. "
                           "Check the source adapters' weights, or mix with smaller weights.")


def add_weighted_mix(library: AdapterLibrary, lm: LoadedModel, keys: list[str], key: str,
                     spec: MixSpec) -> AdapterInfo:
    """Mix the loaded PEFT adapters `keys` into a new PEFT adapter `key` and save it as `spec.new_name`.

    On any failure the half-made PEFT adapter is removed again and the error is a sentence (AdapterError).
    Caller holds the model lock and restores the active adapter afterwards.
    """
    peft = lm.model
    sources = [library.get(n) for n in spec.names]
    try:
        started = time.perf_counter()
        peft.add_weighted_adapter(keys, list(spec.weights), key, combination_type=spec.method)
        refuse_non_finite(peft, key, spec)
        return save_mixed_adapter(library, peft, key, spec, sources, lm, time.perf_counter() - started)
    except Exception as err:
        if key in peft.peft_config:
            peft.delete_adapter(key)
        if isinstance(err, AdapterError):
            raise
        raise AdapterError(f"PEFT could not mix these adapters with {spec.method!r}: {err}") from err


@dataclass(frozen=True)
class BaseFacts:
    """What merging needs to know about the loaded base, captured under the lock."""

    name: str
    source: str
    location: str  # plain safetensors checkpoint dir, or the hub id
    dtype: torch.dtype
    tokenizer: Any
    trust_remote_code: bool

    @classmethod
    def of(cls, lm: LoadedModel, trust_remote_code: bool) -> "BaseFacts":
        location = str(lm.checkpoint_dir) if lm.checkpoint_dir is not None else lm.source
        # A CPU app may decode in bf16 for speed; the merged checkpoint keeps the full fp32 weights there.
        dtype = torch.float32 if lm.device.type == "cpu" else lm.dtype
        return cls(lm.name, lm.source, location, dtype, lm.tokenizer, trust_remote_code)


def merge_into_copy(info: AdapterInfo, base: BaseFacts, out_root: Path, out_name: str) -> Path:
    """Load a separate copy of the base on the CPU, merge the adapter (merge_and_unload), save safetensors."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    try:
        target = out_root / validate_name(out_name, "output folder name")
    except ValueError as err:
        raise AdapterError(str(err)) from err
    if target.exists():
        raise AdapterError(f"{target} already exists; choose another name.")
    check_adapter_files(info.path)
    try:
        model = AutoModelForCausalLM.from_pretrained(base.location, dtype=base.dtype, use_safetensors=True,
                                                     trust_remote_code=base.trust_remote_code)
    except Exception as err:
        raise AdapterError(f"Could not load a separate copy of {base.name} to merge into: {err}") from err
    try:
        merged = PeftModel.from_pretrained(model, str(info.path)).merge_and_unload()
    except Exception as err:
        raise AdapterError(f"Merging {info.name!r} into {base.name} failed: {err}") from err
    with atomic_dir(target) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        base.tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "playground-merge.json", {
            "adapter": info.name, "adapter_meta": info.meta, "base_model": base.name, "base_source": base.source,
            "created_at": now_iso()})
    return target
