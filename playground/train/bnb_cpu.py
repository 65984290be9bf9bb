"""Keep a QLoRA training copy's 4-bit weights in bitsandbytes' trainable layout on a CPU.

bitsandbytes (0.48+) repacks a `Linear4bit` layer's weights into an inference-only layout the first time the
layer runs on a CPU with AVX512-BF16, in eval mode, on an input without grad and not yet packed
(`Linear4bit.forward` -> `functional._convert_weight_packed_for_cpu`). In a training run that is the first
evaluation or live probe, and the repacking breaks training twice over:

- it assumes out_features divisible by 32 and in_features by the quantization block (64); other layers fail
  (`RuntimeError: shape '[32, 0]' is invalid for input of size 16`, `AssertionError: N must be divisible by
  block_n`);
- once packed, every later forward, training included, runs through `gemv_4bit`, which has no autograd kernel:
  gradients stop flowing through the frozen base layers into the LoRA layers below them (torch only warns),
  and eval losses are computed in bf16 while training computes in fp32.

The switch bitsandbytes consults is the per-layer attribute `support_avx512bf16_for_cpu`, set from
`has_avx512bf16()` when the layer is built. Turning it off keeps the training copy on the dequantize path that
every CPU uses, for training, evaluation and the probe alike.
"""

from __future__ import annotations

from typing import Any

PACKING_SWITCH = "support_avx512bf16_for_cpu"  # bitsandbytes.nn.Linear4bit's per-layer flag


def keep_4bit_weights_unpacked(model: Any) -> int:
    """Turn off bitsandbytes' CPU inference repacking on every 4-bit layer of `model`; returns how many layers
    had it on (0 on CPUs without AVX512-BF16, or without 4-bit layers)."""
    switched = 0
    for module in model.modules():
        if getattr(module, PACKING_SWITCH, False):
            setattr(module, PACKING_SWITCH, False)
            switched += 1
    return switched
