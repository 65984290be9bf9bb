"""Make TRL's fused LM head score only the answer tokens on a CPU too.

TRL's SFTTrainer projects hidden states through the LM head in tiles and, on CUDA/XPU, only at positions whose
label is not -100 ("compact"). Elsewhere it scores every position, because on XLA-like devices a changing number
of positions would recompile the kernel. A CPU runs eagerly and never recompiles, so scoring the prompt tokens is
pure waste there: with completion-only loss on the bundled model (vocab 49,152) it is ~25 % of a training step.
The loss and gradients are the same either way (tests/test_trl_cpu.py checks it).
"""

from __future__ import annotations

from typing import Any


def score_only_labelled_positions_on_cpu() -> bool:
    """Let TRL's fused LM head take its compact path on CPU. Returns whether the switch is in place (False when
    this TRL has no such switch, in which case training is simply a bit slower)."""
    import trl.trainer.utils as trl_utils

    original: Any = getattr(trl_utils, "_use_triton", None)
    if original is None or not hasattr(trl_utils, "add_fused_lm_head"):
        return False
    if hasattr(original, "_playground_original"):  # already switched
        return True

    def compact_on_cpu(device: Any) -> bool:
        # Only the `compact` decision in add_fused_lm_head reads this binding; TRL's kernels keep their own
        # reference to the original function, so no Triton kernel is ever picked for a CPU tensor.
        return device.type == "cpu" or original(device)

    compact_on_cpu._playground_original = original  # type: ignore[attr-defined]  # marks the switch; tests undo it
    trl_utils._use_triton = compact_on_cpu
    return True
