"""DPO and GRPO configs from the settings: one mapping, used by the worker, the exported script and the tests
(the counterpart of hf_args.sft_kwargs for TRL's DPOConfig and GRPOConfig).

The trainer-agnostic part (steps, batch, learning rate, schedule, checkpoints …) is taken from sft_kwargs, so the
three methods can never disagree on it. Only what depends on where it runs (output folder, device, precision,
progress bars) is added by each caller; precision comes from the hardware unless the job trains in full precision
(TrainJobConfig.full_precision; TRL defaults to bf16, ~10x slower on a CPU).
"""

from __future__ import annotations

from typing import Any

from playground.train.config import TrainJobConfig
from playground.train.hf_args import runtime_kwargs, sft_kwargs

# The TrainingArguments every method shares (SFT-only keys such as packing or completion_only_loss are left out).
SHARED_KEYS = ("num_train_epochs", "max_steps", "per_device_train_batch_size", "per_device_eval_batch_size",
               "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type", "warmup_steps",
               "activation_checkpointing", "optim", "seed", "data_seed", "eval_strategy", "eval_steps",
               "logging_steps", "save_strategy", "save_steps", "save_total_limit", "report_to")
# Label smoothing the losses that need it get (TRL: exo_pair refuses 0; robust with 0 is plain sigmoid DPO).
LABEL_SMOOTHING = {"exo_pair": 1e-3, "robust": 0.1}  # the EXO and Robust DPO papers' values
DPO_COMMENTS = {"max_length": "prompt + answer tokens; longer pairs are cut at the end (prompt alone: dropped)",
                "beta": "how far the model may move from the reference: lower = further",
                "loss_type": "TRL's DPO losses, e.g. sigmoid (the original DPO)",
                "loss_weights": "with 'sft': the chosen answer's NLL is added with this weight (RPO)",
                "label_smoothing": "the loss's paper value (EXO: 1e-3, Robust DPO: 0.1)"}
GRPO_COMMENTS = {"per_device_train_batch_size": "answers per step (prompts x num_generations)",
                 "beta": "KL penalty towards the reference (0 = none)",
                 "reward_weights": "one weight per reward function, in order"}


def shared_kwargs(config: TrainJobConfig) -> dict[str, Any]:
    sft = sft_kwargs(config, "messages")
    return {k: sft[k] for k in SHARED_KEYS}


def dpo_kwargs(config: TrainJobConfig) -> dict[str, Any]:
    """Everything of DPOConfig the settings decide."""
    m = config.tuning
    losses: dict[str, Any] = {"loss_type": [m.loss_type]}
    if m.sft_weight > 0 and m.loss_type != "sft":  # RPO-style: TRL combines the losses with these weights
        losses = {"loss_type": [m.loss_type, "sft"], "loss_weights": [1.0, m.sft_weight]}
    if m.loss_type in LABEL_SMOOTHING:
        losses["label_smoothing"] = LABEL_SMOOTHING[m.loss_type]
    # TRL 1.16's DPOConfig has no separate prompt / answer caps: their sum is the pair's max_length.
    return dict(**shared_kwargs(config), beta=m.beta, **losses,
                max_length=m.max_prompt_length + m.max_completion_length)


def grpo_kwargs(config: TrainJobConfig, reward_weights: list[float]) -> dict[str, Any]:
    """Everything of GRPOConfig the settings decide. GRPO is not evaluated on the eval split while training
    (that would sample answers for every eval prompt); the held-out reward is measured after the run."""
    m = config.tuning
    kwargs = shared_kwargs(config)
    kwargs.update(eval_strategy="no", per_device_eval_batch_size=config.train.batch_size)
    kwargs.pop("eval_steps")
    return dict(**kwargs, num_generations=m.num_generations, max_completion_length=m.max_completion_length,
                temperature=m.temperature, beta=m.kl_beta, reward_weights=list(reward_weights), log_completions=False)


def dpo_config(config: TrainJobConfig, *, output_dir: str, device_type: str, bf16_supported: bool = False) -> Any:
    from trl import DPOConfig

    return DPOConfig(output_dir=output_dir, **dpo_kwargs(config), **runtime_kwargs(config, device_type, bf16_supported))


def grpo_config(config: TrainJobConfig, reward_weights: list[float], *, output_dir: str, device_type: str,
                bf16_supported: bool = False) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(output_dir=output_dir, **grpo_kwargs(config, reward_weights),
                      **runtime_kwargs(config, device_type, bf16_supported))
