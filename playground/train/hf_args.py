"""One mapping from the settings to the libraries: PEFT's `LoraConfig` and TRL's `SFTConfig` keyword arguments.

The worker, the trainable-parameter count and the exported script all build from these dicts, so the script
can never drift from what the app ran. Only what depends on where it runs (output folder, device, mixed
precision, progress bars) is added by each caller.
"""

from __future__ import annotations

from typing import Any

from playground.train.config import LoraSettings, TrainJobConfig, precision_flags

# Shown next to the keyword in the exported script.
SFT_COMMENTS = {"warmup_steps": "< 1: a fraction of the steps", "eval_steps": "< 1: a fraction of the run",
                "activation_checkpointing": "a.k.a. gradient checkpointing", "max_steps": "-1 = use the epochs",
                "ddp_find_unused_parameters": "several processes: every LoRA weight gets a gradient each step"}


def lora_kwargs(lora: LoraSettings) -> dict[str, Any]:
    return dict(r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
                target_modules=lora.peft_target_modules(), use_rslora=lora.use_rslora, use_dora=lora.use_dora,
                bias=lora.bias, task_type="CAUSAL_LM")


def lora_config(lora: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(lora))


def sft_kwargs(config: TrainJobConfig, data_format: str) -> dict[str, Any]:
    """Everything of SFTConfig the settings decide. `data_format` is the resolved format of the rows (plain
    text has no prompt to mask); an eval split exists when the eval fraction is above 0 (as in split_rows)."""
    t, d = config.train, config.data
    return dict(
        num_train_epochs=t.epochs, max_steps=t.max_steps or -1, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler, warmup_steps=t.warmup,
        max_length=t.max_seq_length, packing=t.packing, activation_checkpointing=t.gradient_checkpointing,
        optim=t.optimizer, seed=t.seed, data_seed=t.seed,
        completion_only_loss=d.completion_only_loss if data_format != "text" else None,
        eval_strategy="steps" if d.eval_fraction > 0 else "no", eval_steps=t.eval_interval(),
        logging_steps=1, save_strategy="steps", save_steps=t.save_steps, save_total_limit=2, report_to="none",
        ddp_find_unused_parameters=False,
    )


def sft_config(config: TrainJobConfig, data_format: str, *, output_dir: str, device_type: str,
               bf16_supported: bool = False) -> Any:
    """The worker's SFTConfig: the settings' kwargs plus where it runs (no progress bars: it logs to a file)."""
    from trl import SFTConfig

    return SFTConfig(output_dir=output_dir, **sft_kwargs(config, data_format),
                     **runtime_kwargs(config, device_type, bf16_supported))


def runtime_kwargs(config: TrainJobConfig, device_type: str, bf16_supported: bool = False) -> dict[str, Any]:
    """Where it runs, for every method's config: no progress bars (the worker logs to a file), the CPU flag,
    pinned memory on CUDA, and the precision (TrainJobConfig.full_precision, else the hardware's)."""
    return dict(disable_tqdm=True, dataloader_pin_memory=device_type == "cuda", use_cpu=device_type == "cpu",
                **precision_flags(device_type, bf16_supported, config.full_precision))
