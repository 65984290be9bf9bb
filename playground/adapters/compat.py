"""Does an adapter fit the loaded base? Its recorded base fingerprint first, then every tensor shape."""

from __future__ import annotations

import re
from typing import Any

from playground.adapters.library import AdapterError, AdapterInfo
from playground.model.store import LoadedModel

_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\."
                       r"(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$")


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
