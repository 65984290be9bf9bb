"""The base model's own anatomy when PEFT adapters are loaded into it.

PEFT injects its layers into the live base model in place: `q_proj` becomes a `lora.Linear` holding the
original Linear as `base_layer` plus `lora_A` / `lora_B` for every loaded adapter. Counting or printing that
model would mix the adapters' matrices into the base's numbers. `base_view` returns a light copy of the
module tree with every PEFT layer replaced by the layer it wraps; it shares the live parameters (nothing is
copied, nothing in the live model changes) and is meant for reading only: counting, tables, `print`.

PEFT is recognised by its duck type (a tuner layer declares `adapter_layer_names` and wraps `base_layer`, an
auxiliary wrapper wraps `original_module`), so this module does not import peft.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

_WRAPPED = ("base_layer", "original_module")


def is_peft_layer(module: torch.nn.Module) -> bool:
    """A PEFT tuner layer or auxiliary wrapper (it declares the names of the adapter sub-layers it holds)."""
    return hasattr(module, "adapter_layer_names") and any(w in module._modules for w in _WRAPPED)


def unwrap_peft_model(model: Any) -> Any:
    """The transformers model under a PeftModel wrapper (`get_base_model()`), or the model itself."""
    getter = getattr(model, "get_base_model", None)
    return getter() if callable(getter) and hasattr(model, "peft_config") else model


def forward_accepts(model: Any, name: str) -> bool:
    """Whether the base model's forward takes `name` (e.g. logits_to_keep, to skip logits nobody reads), checked
    on its signature as generate() checks it (an error inside the forward is not mistaken for a "no")."""
    try:
        return name in inspect.signature(unwrap_peft_model(model).forward).parameters
    except (TypeError, ValueError):  # no inspectable signature
        return False


def _wrapped(module: torch.nn.Module) -> torch.nn.Module:
    while is_peft_layer(module):
        module = next(module._modules[w] for w in _WRAPPED if w in module._modules)
    return module


def _has_peft(module: torch.nn.Module) -> bool:
    return any(is_peft_layer(m) for m in module.modules())


def _view(module: torch.nn.Module) -> torch.nn.Module:
    module = _wrapped(module)
    if not _has_peft(module):
        return module
    clone = copy.copy(module)  # a new Module object; its __dict__ is a shallow copy of the original's
    clone.__dict__["_modules"] = {k: (None if c is None else _view(c)) for k, c in module._modules.items()}
    return clone


def base_view(model: Any) -> Any:
    """The base model as it was before any adapter was loaded, for reading (shares the live weights).

    Returns the model itself when no PEFT layer is present, so callers pay nothing in the common case.
    """
    return _view(unwrap_peft_model(model))


def adapter_parameter_counts(model: Any) -> dict[str, int]:
    """Parameters each loaded PEFT adapter adds, keyed by PEFT's adapter name (0 entries without PEFT)."""
    counts: dict[str, int] = {}
    for module in unwrap_peft_model(model).modules():
        if not is_peft_layer(module):
            continue
        for part in module.adapter_layer_names:
            holder = getattr(module, part, None)
            if not isinstance(holder, (torch.nn.ModuleDict, torch.nn.ParameterDict)):
                continue
            for key, sub in holder.items():
                n = sub.numel() if isinstance(sub, torch.Tensor) else sum(p.numel() for p in sub.parameters())
                counts[key] = counts.get(key, 0) + n
    return counts
