"""What LoRA settings mean on a model: the layers a LoRA can wrap, the trainable parameters, training memory."""

from __future__ import annotations

from typing import Any

import torch

from playground.model.sources import pick_dtype
from playground.model.store import ModelStore
from playground.train.config import TrainJobConfig
from playground.train.hf_args import lora_config


def count_trainable(model_config: Any, lora: Any) -> tuple[int, int]:
    """(trainable, total) parameters of the LoRA setup, counted by PEFT on a weightless (meta) copy built with
    the worker's own LoraConfig."""
    import copy

    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(model_config)
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    return get_peft_model(model, lora_config(lora)).get_nb_trainable_parameters()


def training_rows(config: TrainJobConfig, prompt_tokens: int | None = None) -> tuple[int, int]:
    """(rows, tokens per row) of one forward and backward pass, per method. SFT: the batch at the max sequence
    length. DPO: chosen and rejected go through together (twice the pairs), each prompt + answer long (its
    max_length). GRPO: the batch counts answers (prompts x generations), each prompt + sampled answer; TRL does
    not cut GRPO prompts, so the prompt part is the data's longest prompt (`prompt_tokens`, measured by the
    caller), or the Max prompt length budget while that is unknown."""
    t, m = config.train, config.tuning
    if m.method == "dpo":
        return 2 * t.batch_size, m.max_prompt_length + m.max_completion_length
    if m.method == "grpo":
        return t.batch_size, (prompt_tokens or m.max_prompt_length) + m.max_completion_length
    return t.batch_size, t.max_seq_length


def grpo_rows_note(config: TrainJobConfig, prompt_tokens: int | None) -> str:
    """What the GRPO estimate assumed about each answer's length, since its prompt part is not a setting."""
    m = config.tuning
    if prompt_tokens:
        return (f" · counted for {config.train.batch_size} answers of {prompt_tokens} prompt tokens (the data's "
                f"longest) + {m.max_completion_length} sampled")
    return (f" · counted with prompts of {m.max_prompt_length} tokens: preview the data to count its own")


def memory_estimate(model: Any, config: TrainJobConfig, device_type: str, prompt_tokens: int | None = None,
                    trainable: int | None = None) -> Any | None:
    """The Model tab's estimator applied to these settings (playground.model.memory); None if it cannot say.
    `trainable`: PEFT's count for the LoRA settings (count_trainable), so the gradients and optimizer states
    follow the target modules; without it, LoRA on every Linear layer is assumed."""
    try:
        from playground.model.memory import MemoryEstimateConfig, estimate_memory, model_shape
    except ImportError:
        return None
    t = config.train
    optim = {"paged_adamw_8bit": "paged_adamw_8bit", "paged_adamw_32bit": "paged_adamw_32bit",
             "adamw_8bit": "adamw_8bit", "sgd": "sgd"}.get(t.optimizer, "adamw_32bit")
    # The dtype the worker loads the training copy in (the same rule: pick_dtype with the run's Precision).
    dtype = pick_dtype(torch.device(device_type), config.load_dtype)
    precision = {torch.float32: "fp32", torch.bfloat16: "bf16"}.get(dtype, "fp16")
    batch, seq_len = training_rows(config, prompt_tokens)
    try:
        cfg = MemoryEstimateConfig(batch_size=batch, seq_len=seq_len, precision=precision,
                                   method="qlora" if t.quantization == "4bit" else "lora",
                                   lora_rank=config.lora.r, optimizer=optim,
                                   gradient_checkpointing=t.gradient_checkpointing, trainable_params=trainable)
        return estimate_memory(model_shape(model), cfg)
    except (ValueError, TypeError):
        return None


class SettingsDescriber:
    """Markdown for the settings column: trainable parameters on the app's model and the memory estimate.
    Counting builds a meta model with PEFT (~0.5 s), so counts are cached per model and LoRA shape."""

    def __init__(self) -> None:
        self._counts: dict[tuple, tuple[int, int]] = {}

    def describe(self, store: ModelStore, config: TrainJobConfig, prompt_tokens: int | None = None) -> str:
        from playground.model.inspect import format_bytes

        config.lora.validate()
        with store.use() as lm:
            base, fingerprint, device = lm.base_model, lm.fingerprint, lm.device.type
            lora = config.lora
            key = (fingerprint, lora.r, tuple(lora.target_modules), lora.use_dora, lora.bias)
            if key not in self._counts:
                if len(self._counts) > 64:
                    self._counts.clear()
                self._counts[key] = count_trainable(base.config, lora)
            trainable, total = self._counts[key]
            estimate = memory_estimate(base, config, device, prompt_tokens, trainable)
        text = (f"**Trainable parameters: {trainable:,}** of {total:,} "
                f"({100 * trainable / max(1, total):.2f} %)")
        if estimate is not None:
            text += (f" · estimated training memory ≈ **{format_bytes(estimate.total)}** "
                     f"({', '.join(f'{k} {format_bytes(v)}' for k, v in estimate.parts())})")
            if config.tuning.method == "grpo":
                text += grpo_rows_note(config, prompt_tokens)
        return text
