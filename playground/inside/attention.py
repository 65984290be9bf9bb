"""Attention weights per layer and head for a prompt: who looks at whom.

Gradio-free. SDPA / flash kernels never materialise the weights, so this one forward pass runs with eager
attention (`PreTrainedModel.set_attn_implementation("eager")`, transformers' supported switch) and puts the
app's implementation back in a `finally` block; the rest of the app keeps its fast kernel. Models that cannot
switch dynamically (e.g. Falcon) still return weights when asked with `output_attentions=True`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from playground.decode.checks import check_int
from playground.inside.readout import UnsupportedModel
from playground.inside.tokens import Prompt
from playground.model.anatomy import forward_accepts, unwrap_peft_model
from playground.model.store import LoadedModel

MAX_ATTENTION_TOKENS = 256


def _configs(model: Any) -> list[Any]:
    """Every config object of the model and its sub-models (each has its own attention implementation)."""
    seen: dict[int, Any] = {}
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation_internal"):
            seen.setdefault(id(cfg), cfg)
            for key in getattr(cfg, "sub_configs", {}) or {}:
                sub = getattr(cfg, key, None)
                if sub is not None and hasattr(sub, "_attn_implementation_internal"):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


def attn_implementation(model: Any) -> str | None:
    """The attention kernel the (base) model uses now, e.g. 'sdpa'."""
    return getattr(unwrap_peft_model(model).config, "_attn_implementation", None)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[str | None]:
    """Switch the model to eager attention for the duration of the block, then restore exactly what it was."""
    base = unwrap_peft_model(model)
    before = base.config._attn_implementation
    snapshot = [(cfg, cfg._attn_implementation_internal) for cfg in _configs(base)]
    public = before != "eager" and base._can_set_attn_implementation()
    if public:
        base.set_attn_implementation("eager")
    elif before == "sdpa":  # e.g. Falcon: one attention class reads the config at call time; its mask must match
        for cfg, _ in snapshot:
            cfg._attn_implementation = "eager"
    try:
        yield base.config._attn_implementation
    finally:
        if public:
            base.set_attn_implementation(before)
        for cfg, value in snapshot:  # sub-configs the public call may have left behind
            if cfg._attn_implementation_internal != value:
                cfg._attn_implementation_internal = value


@dataclass(frozen=True)
class AttentionResult:
    prompt: Prompt
    weights: torch.Tensor          # layers × heads × T × T, float32 on the CPU; row = query, column = key
    implementation: str | None     # the app's attention kernel (unchanged by this pass)
    model_name: str = ""
    adapter: str | None = None

    @property
    def num_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.weights.shape[1])

    def check(self, layer: Any, head: Any) -> tuple[int, int]:
        """Layer 1…L and head 0…H (0 = average over heads) as ints, or a ValueError naming the field."""
        return (check_int("layer", layer, 1, self.num_layers),
                check_int("head", head, 0, self.num_heads, " (0 = average over heads)"))

    def matrix(self, layer: Any, head: Any) -> torch.Tensor:
        """T × T weights of one layer (1-based) for one head (1-based) or averaged over heads (head 0)."""
        layer, head = self.check(layer, head)
        block = self.weights[layer - 1]
        return block.mean(0) if head == 0 else block[head - 1]

    def last_row(self, layer: Any, head: Any) -> torch.Tensor:
        """What the last token attends to: one weight per prompt token."""
        return self.matrix(layer, head)[-1]

    def summary(self, layer: Any, head: Any) -> str:
        layer, head = self.check(layer, head)
        row = self.last_row(layer, head)
        best = int(row.argmax())
        who = "averaged over heads" if head == 0 else f"head {head}"
        adapter = f" · adapter `{self.adapter}`" if self.adapter else ""
        return (f"{len(self.prompt.ids)} tokens · {self.num_layers} layers × {self.num_heads} heads. In layer "
                f"{layer} ({who}) the last token “{self.prompt.labels[-1]}” attends most to "
                f"**“{self.prompt.labels[best]}”** (position {best}, {100 * float(row[best]):.1f} %){adapter}.")

    def as_api(self, layer: Any, head: Any) -> dict[str, Any]:
        layer, head = self.check(layer, head)
        mat = self.matrix(layer, head)
        return {"tokens": list(self.prompt.labels), "ids": list(self.prompt.ids), "layer": layer, "head": head,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "weights": [[round(float(x), 6) for x in row[: i + 1]] for i, row in enumerate(mat.tolist())],
                "last_token": [{"position": i, "token": t, "weight": float(w)}
                               for i, (t, w) in enumerate(zip(self.prompt.labels, mat[-1].tolist()))],
                "attn_implementation": self.implementation, "model": self.model_name, "adapter": self.adapter}


def _plausible(weights: torch.Tensor, dtype: torch.dtype) -> bool:
    """Every row a probability distribution over earlier tokens only (what a causal LM's softmax gives),
    up to the rounding of the dtype the weights came in (bf16 weights sum to 1 ± a few 2^-8)."""
    tol = max(1e-3, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else 1e-3
    rows_ok = bool(((weights.sum(-1) - 1).abs() <= tol).all())
    return rows_ok and float(weights.triu(1).abs().amax()) <= 1e-6


def attention_weights(lm: LoadedModel, prompt: Prompt) -> AttentionResult:
    """One forward pass with eager attention (caller holds the store's lock); the kernel is restored after."""
    model = lm.model
    if len(prompt.ids) > MAX_ATTENTION_TOKENS:
        raise ValueError(f"prompt is {len(prompt.ids):,} tokens long; the attention view takes at most "
                         f"{MAX_ATTENTION_TOKENS} tokens. Shorten the prompt.")
    kwargs: dict[str, Any] = {"output_attentions": True, "use_cache": False}
    if forward_accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    before = attn_implementation(model)
    with torch.inference_mode(), eager_attention(model):
        out = model(input_ids=torch.tensor([prompt.ids], device=lm.device), **kwargs)
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        kind = getattr(unwrap_peft_model(model).config, "model_type", "?")
        raise UnsupportedModel(f"This model family ({kind}) does not return its attention weights, so the "
                               "attention view cannot show it.")
    weights = torch.stack([a[0].float().cpu() for a in attentions])
    if not _plausible(weights, attentions[0].dtype):
        kind = getattr(unwrap_peft_model(model).config, "model_type", "?")
        raise UnsupportedModel(f"This model family ({kind}) returned attention weights that are not causal "
                               "probabilities (rows must sum to 1, no weight on later tokens); not shown.")
    return AttentionResult(prompt=prompt, weights=weights, implementation=before, model_name=lm.name,
                           adapter=lm.active_adapter)
