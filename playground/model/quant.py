"""How a base model is quantized through bitsandbytes (`--load-in-4bit` / `--load-in-8bit`, QLoRA): the
config's arguments declared once for the app, the training worker and the exported script."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # only for the annotation: train.config reads Quantization without importing torch
    import torch

Quantization = Literal["none", "8bit", "4bit"]  # the base model's weights: as they are, LLM.int8, NF4 (QLoRA)


def quant_kwargs(quantization: str) -> dict[str, Any]:
    """BitsAndBytesConfig's arguments for a quantization, but the 4-bit compute dtype (the model's dtype): one
    declaration for the app, the training worker and the exported script. 4-bit is QLoRA's NF4 with double
    quantization; {} for "none"."""
    if quantization == "8bit":
        return {"load_in_8bit": True}
    if quantization == "4bit":
        return {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True}
    return {}


def quant_config(quantization: str, dtype: torch.dtype) -> Any:
    """The BitsAndBytesConfig a model loads with (None: not quantized)."""
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        # bitsandbytes warns on every forward that fp32 inputs are cast to fp16: expected, and noisy.
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt: inputs will be cast.*")
        return BitsAndBytesConfig(**quant_kwargs(quantization))
    return BitsAndBytesConfig(**quant_kwargs(quantization), bnb_4bit_compute_dtype=dtype)
