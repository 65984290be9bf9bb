"""Keep attention gradients finite on NVIDIA GPUs: training never uses cuDNN's attention kernels.

PyTorch 2.11 and later pick cuDNN for `scaled_dot_product_attention` with a padding mask on Hopper GPUs (H100,
H200). In bf16/fp16, cuDNN's backward returns NaN in the query gradient when the sequence length is 64 more than a
multiple of 128 and a row's attention scores are very negative (pytorch/pytorch#196678, huggingface/trl#7181).
Padded batches hit it. On an H200 with the pinned libraries, the bundled model's GRPO run stopped at step 11 with a
NaN grad norm; a second try stopped at the same step. Autograd's anomaly mode named
`ScaledDotProductCudnnAttentionBackward0`. With eager attention, or in fp32 (no cuDNN attention), the same run
trained all 85 steps. Switching cuDNN attention off leaves flash and memory-efficient attention, the same math.
With this switch, the same run on an H200 trained all 85 steps with finite gradients (two seeds).
Inference is unaffected (only the backward is wrong), so the app's own model keeps the default.
"""

from __future__ import annotations


def keep_attention_gradients_finite(device_type: str) -> bool:
    """Turn cuDNN attention off for this (training) process on CUDA; True when it did. CPU / MPS: nothing to do."""
    if device_type != "cuda":
        return False
    import torch

    torch.backends.cuda.enable_cudnn_sdp(False)
    return True
