"""The model's own read-out (final norm → [projection] → LM head), found generically, for the logit lens.

Gradio-free. The standard logit lens reads every layer's residual stream through the same final norm and
LM head the model applies after its last layer. Hugging Face's `hidden_states[-1]` already has that final
norm applied (and OPT's `project_out`), so the last layer's raw residual is taken from the input of the read-out
itself (a forward hook), which makes the lens's last layer equal the model's real logits. Families whose
read-out is not found, or does not reproduce the real logits (e.g. logit soft-capping), are refused with a
sentence rather than shown wrong.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from playground.model.anatomy import unwrap_peft_model

# Where the final norm (and an optional projection after it) lives, per architecture, from the *ForCausalLM.
NORM_PATHS = (
    "model.norm",                        # Llama, SmolLM, Mistral, Qwen2, Phi-3, Gemma, …
    "transformer.ln_f",                  # GPT-2, Falcon, GPT-J, Bloom
    "gpt_neox.final_layer_norm",         # GPT-NeoX, Pythia
    "model.decoder.final_layer_norm",    # OPT
    "model.final_layernorm",             # Phi-1/2
    "transformer.norm_f",                # MPT
)
# Config keys of logit transforms after the head (Gemma-2/3 soft-capping, Cohere, Granite): not read out.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
PROJECTION_PATHS = ("model.decoder.project_out",)  # OPT with word_embed_proj_dim != hidden_size


class UnsupportedModel(ValueError):
    """This model family's read-out could not be found or does not reproduce its logits."""


def _attr_path(root: Any, path: str) -> tuple[bool, Any]:
    """(found, value) for a dotted attribute path; a path that exists but holds None counts as found."""
    obj = root
    for part in path.split("."):
        if not hasattr(obj, part):
            return False, None
        obj = getattr(obj, part)
    return True, obj


def _unsupported(model: Any, why: str) -> UnsupportedModel:
    kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    return UnsupportedModel(f"The logit lens does not support this model family ({kind}): {why}. "
                            "It supports Llama/SmolLM, Mistral, Qwen2, Phi-3, GPT-2, GPT-NeoX, OPT and Falcon.")


@dataclass
class Readout:
    """final norm (may be None) → projection (may be None) → LM head, as modules of the base model."""

    norm: torch.nn.Module | None
    projection: torch.nn.Module | None
    head: torch.nn.Module
    captured: list[torch.Tensor] = field(default_factory=list)

    @classmethod
    def find(cls, model: Any) -> "Readout":
        base = unwrap_peft_model(model)
        head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        if head is None:
            raise _unsupported(base, "it has no LM head (get_output_embeddings() is None)")
        scaled = [key for key in LOGIT_TRANSFORMS if getattr(base.config, key, None) not in (None, 1, 1.0)]
        if scaled:
            raise _unsupported(base, f"it caps or scales its logits after the LM head ({', '.join(scaled)})")
        norm_found, norm = next(((True, v) for ok, v in (_attr_path(base, p) for p in NORM_PATHS) if ok),
                                (False, None))
        if not norm_found:
            raise _unsupported(base, "its final norm is not at a known place")
        projection = next((v for ok, v in (_attr_path(base, p) for p in PROJECTION_PATHS) if ok and v), None)
        return cls(norm=norm, projection=projection, head=head)

    @property
    def entry(self) -> torch.nn.Module | None:
        """The first read-out module whose input is the last layer's raw residual (None: the head itself)."""
        return self.norm if self.norm is not None else self.projection

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[torch.Tensor]]:
        """During a forward pass, record the input of the read-out's first module (the raw last residual)."""
        self.captured.clear()
        entry = self.entry
        if entry is None:
            yield self.captured
            return
        handle = entry.register_forward_hook(lambda _m, args, _out: self.captured.append(args[0].detach()))
        try:
            yield self.captured
        finally:
            handle.remove()

    def logits(self, residual: torch.Tensor) -> torch.Tensor:
        """Read any residual stream (… × hidden) out through norm → projection → head, as float32 logits."""
        x = residual
        if self.norm is not None:
            x = self.norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return self.head(x).float()


def last_residual(readout: Readout, hidden_states: tuple[torch.Tensor, ...], model: Any) -> torch.Tensor:
    """The last layer's raw residual (1 × T × hidden): the hook's capture, or hidden_states[-1] when the
    model has no final norm or projection (then nothing was applied to it)."""
    if readout.entry is None:
        return hidden_states[-1]
    full = [c for c in readout.captured if c.shape[:-1] == hidden_states[-1].shape[:-1]]
    if not full:
        raise _unsupported(unwrap_peft_model(model), "its final norm did not run on the last layer's output")
    return full[-1]


def check_matches(lens_last: torch.Tensor, real_last: torch.Tensor, model: Any, dtype: torch.dtype) -> float:
    """The lens's last layer must reproduce the model's logits (up to the rounding of the model's dtype:
    bf16 GEMMs of another shape round differently); returns the max |Δp| of the two distributions."""
    lens, real = lens_last.float(), real_last.float()
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 1e-3
    tol = max(1e-3, 8 * eps) * (1 + float(real.abs().max()))
    gap = float((lens - real).abs().max())
    if not gap <= tol:
        raise _unsupported(unwrap_peft_model(model), f"reading out its last layer gives other logits than the model "
                           f"itself (max difference {gap:.3g}), e.g. because it scales or caps its logits")
    return float((torch.softmax(lens, -1) - torch.softmax(real, -1)).abs().max())
