"""Fine-tuning memory estimator: weights + gradients + optimizer states + activations (+ logits).

The activation term is the course formula (Korthikanti et al., 2022) for one transformer layer with
16-bit activations: 34·h·b·s + 5·a·b·s² bytes. Flash / SDPA attention never materialises the s×s
attention matrix, so the s² term goes. With gradient checkpointing only each layer's input (2·h·b·s
bytes) is kept and one layer's activations are recomputed at a time during backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Precision = Literal["fp32", "bf16", "fp16"]
Method = Literal["full", "lora", "qlora"]
Optimizer = Literal["adamw_32bit", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "sgd"]
Attention = Literal["eager", "sdpa", "flash"]

BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
# NF4 packs 2 weights per byte; double quant adds ~0.127 bits/param of quantization constants.
NF4_BYTES_PER_PARAM = 0.5 + 0.127 / 8
# Adam keeps two states (m, v) per trainable parameter: 2×4 bytes in 32-bit, 2×1 byte in 8-bit.
OPTIMIZER_BYTES = {"adamw_32bit": 8.0, "paged_adamw_32bit": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0,
                   "sgd": 0.0}


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model."""

    total_params: int
    hidden_size: int
    num_layers: int
    num_heads: int
    vocab_size: int
    # (in_features, out_features) of every Linear a LoRA would wrap ("all-linear", lm_head excluded)
    lora_linears: tuple[tuple[int, int], ...]
    # weights bitsandbytes stores in 4-bit (its Linear layers' weights); None = those of lora_linears
    quantized_params: int | None = None

    def nf4_params(self) -> int:
        """Parameters QLoRA holds in NF4; everything else (embeddings, a tied or kept lm_head, norms, biases)
        stays at the compute precision."""
        if self.quantized_params is not None:
            return self.quantized_params
        return sum(i * o for i, o in self.lora_linears)

    def lora_params(self, rank: int) -> int:
        """LoRA adds A (r×in) and B (out×r) to each wrapped Linear."""
        return sum(rank * (i + o) for i, o in self.lora_linears)


@dataclass(frozen=True)
class MemoryEstimateConfig:
    batch_size: int = 4
    seq_len: int = 512
    precision: Precision = "bf16"
    method: Method = "lora"
    lora_rank: int = 16
    optimizer: Optimizer = "adamw_32bit"
    gradient_checkpointing: bool = False
    attention: Attention = "sdpa"
    # LoRA / QLoRA: the adapter's trainable parameters when known (PEFT's count for the chosen target modules,
    # DoRA, biases); None: LoRA of lora_rank on every Linear layer
    trainable_params: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "lora_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1.")
        if self.precision not in BYTES_PER_PARAM:
            raise ValueError(f"precision must be one of {sorted(BYTES_PER_PARAM)}.")
        if self.optimizer not in OPTIMIZER_BYTES:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZER_BYTES)}.")


@dataclass(frozen=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    trainable_params: int
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits

    def parts(self) -> list[tuple[str, float]]:
        return [("weights", self.weights), ("gradients", self.gradients), ("optimizer states", self.optimizer),
                ("activations", self.activations), ("logits", self.logits)]


def activation_bytes(shape: ModelShape, cfg: MemoryEstimateConfig) -> float:
    """Activations kept for backward, in bytes (formula in the module docstring)."""
    h, b, s, a, layers = shape.hidden_size, cfg.batch_size, cfg.seq_len, shape.num_heads, shape.num_layers
    quadratic = 0.0 if cfg.attention in ("sdpa", "flash") else 5.0 * a * b * s * s
    per_layer = 34.0 * h * b * s + quadratic
    scale = BYTES_PER_PARAM[cfg.precision] / 2.0  # the formula counts 16-bit activations
    if cfg.gradient_checkpointing:
        return scale * (layers * 2.0 * h * b * s + per_layer)
    return scale * layers * per_layer


def estimate_memory(shape: ModelShape, cfg: MemoryEstimateConfig) -> MemoryBreakdown:
    """Training memory for one step. Returns bytes per component; see MemoryBreakdown.parts()."""
    notes: list[str] = []
    if cfg.method == "full":
        trainable = shape.total_params
        weights = shape.total_params * BYTES_PER_PARAM[cfg.precision]
    else:
        trainable = shape.lora_params(cfg.lora_rank) if cfg.trainable_params is None else cfg.trainable_params
        nf4 = min(shape.nf4_params(), shape.total_params) if cfg.method == "qlora" else 0
        weights = (nf4 * NF4_BYTES_PER_PARAM + (shape.total_params - nf4 + trainable) * BYTES_PER_PARAM[cfg.precision])
        if cfg.method == "qlora":
            notes.append(f"QLoRA: the Linear layers' weights in 4-bit NF4 with double quantization; embeddings, "
                         f"norms, biases and the output head stay in {cfg.precision}.")
    gradients = trainable * BYTES_PER_PARAM[cfg.precision]
    optimizer = trainable * OPTIMIZER_BYTES[cfg.optimizer]
    if cfg.optimizer.startswith("paged"):
        notes.append("Paged optimizers move states to CPU RAM under memory pressure; peak GPU use can be lower.")
    # The loss is computed on fp32 logits: batch × seq × vocab × 4 bytes.
    logits = float(cfg.batch_size * cfg.seq_len * shape.vocab_size * 4)
    return MemoryBreakdown(weights=float(weights), gradients=float(gradients), optimizer=float(optimizer),
                           activations=activation_bytes(shape, cfg), logits=logits,
                           trainable_params=int(trainable), notes=tuple(notes))


def model_shape(model: Any) -> ModelShape:
    """Read a ModelShape off a loaded transformers model: the base model's own layers (loaded adapters'
    lora_A / lora_B are not layers a new LoRA would wrap, and their parameters are not base weights)."""
    import torch
    from transformers.quantizers.quantizers_utils import should_convert_module

    from playground.model.anatomy import base_view
    from playground.model.inspect import count_params, model_facts

    model = base_view(model)
    facts = model_facts(model, "")
    skip = _not_quantized(model)
    linears: list[tuple[int, int]] = []
    quantized = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            shape = (module.in_features, module.out_features)
        elif type(module).__name__ == "Conv1D":  # GPT-2 stores Linear weights transposed
            shape = tuple(module.weight.shape)
        else:
            continue
        if leaf not in ("lm_head", "embed_out"):
            linears.append(shape)  # type: ignore[arg-type]
        if skip is not None and should_convert_module(name, skip):
            quantized += shape[0] * shape[1]
    return ModelShape(total_params=count_params(model)[0], hidden_size=facts.hidden_size or 0,
                      num_layers=facts.num_layers or 0, num_heads=facts.num_heads or 1,
                      vocab_size=facts.vocab_size, lora_linears=tuple(linears),
                      quantized_params=None if skip is None else quantized)


def _not_quantized(model: Any) -> list[str] | None:
    """The modules transformers' bitsandbytes quantizer leaves unquantized (tied weights, the output embeddings,
    the last module, _keep_in_fp32_modules), as load_in_4bit computes them; None if that fails."""
    from transformers.quantizers.base import get_keys_to_not_convert

    try:
        return get_keys_to_not_convert(model) + list(getattr(model, "_keep_in_fp32_modules", None) or [])
    except Exception:  # noqa: BLE001 (an odd model: fall back to the Linear layers LoRA wraps)
        return None
