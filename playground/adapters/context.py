"""Which weights a forward pass sees: the active adapter, or the base with every adapter switched off.

Generation paths in other tabs wrap their forward/generate calls in `generation_context(lm)` (a no-op unless
a PEFT wrapper exists with no active adapter) and use `base_context(lm)` for an explicit "adapter disabled"
pass (e.g. the base curve of a base-vs-tuned chart).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from playground.model.store import LoadedModel, ModelStore


def is_peft(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@contextlib.contextmanager
def base_context(lm: LoadedModel) -> Iterator[None]:
    """Run the block on the base model: adapters disabled with PEFT's `disable_adapter()` if any are loaded."""
    if is_peft(lm.model) and lm.model.peft_config:
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
