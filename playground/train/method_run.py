"""The worker's per-method steps: which data a method trains on, which TRL trainer it builds, which extra
events it reports, and starting from an adapter of the library.

SFT without a starting adapter is the worker's own `build_trainer`; everything else is built here with the
same model preparation (k-bit preparation for QLoRA, the CPU switch for TRL's fused LM head, precision from the
hardware or the Precision setting). With a starting adapter the PeftModel is handed to the trainer without a
`peft_config`, so TRL trains that adapter on; DPO (and GRPO with a KL penalty) then keep a frozen copy of its
starting weights as the reference (TRL's "ref" adapter). A new adapter's reference is the base model with the
adapter switched off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playground.train.config import TrainJobConfig
from playground.train.events import CHECKPOINTS, EventLog


def prepare_method_data(config: TrainJobConfig, has_chat_template: bool = True) -> Any:
    """The rows the method trains on: SFT examples, preference pairs (DPO) or prompts (GRPO)."""
    method = config.tuning.method
    if method == "dpo":
        from playground.data.preference import prepare_preference

        return prepare_preference(config.data, config.train.seed, has_chat_template=has_chat_template)
    if method == "grpo":
        from playground.data.prompts import prepare_prompts

        return prepare_prompts(config.data, config.train.seed, has_chat_template=has_chat_template)
    from playground.data.loading import prepare_data

    return prepare_data(config.data, config.train.seed, has_chat_template=has_chat_template)


def start_adapter_dir(config: TrainJobConfig) -> Path | None:
    """The library folder of the adapter to start from (None = a new adapter); refuses a missing adapter or one
    trained on another base model, with a sentence."""
    name = config.tuning.start_adapter.strip()
    if not name:
        return None
    from playground.adapters.library import AdapterLibrary, check_adapter_files, read_info

    folder = AdapterLibrary(Path(config.data_dir or ".") / "adapters").folder(name)
    if not folder.is_dir():
        raise ValueError(f"Start from adapter: there is no adapter {name!r} in the library.")
    check_adapter_files(folder, full=False)
    info = read_info(folder)
    if info.base_fingerprint and config.base.fingerprint and info.base_fingerprint != config.base.fingerprint:
        raise ValueError(f"Start from adapter: {name} was trained on {info.base_model}, not on the loaded base "
                         f"model ({config.base.name}); pick an adapter of this model.")
    return folder


def method_callbacks(config: TrainJobConfig, log: EventLog, rewards: list | None = None) -> list:
    if config.tuning.method == "sft":
        return []
    from playground.train.method_events import RewardMetricsCallback, SamplesCallback

    out: list = [RewardMetricsCallback(log)]
    if rewards:
        out.append(SamplesCallback(log, rewards, config.tuning.sample_every))
    return out


def _prepared_model(config: TrainJobConfig, loaded: Any) -> Any:
    """The worker's model preparation (worker.prepared_model), plus the starting adapter when there is one."""
    from playground.train.worker import prepared_model

    model = prepared_model(config, loaded)
    folder = start_adapter_dir(config)
    if folder is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder), is_trainable=True)
        _record_adapter_shape(config, model.peft_config["default"])
    return model


def _record_adapter_shape(config: TrainJobConfig, peft_config: Any) -> None:
    """The LoRA boxes do not apply to a continued adapter: record its real shape in the run's settings (the
    saved adapter's playground.json and the library's rank column read them)."""
    lora = config.lora
    targets = peft_config.target_modules
    lora.r, lora.lora_alpha, lora.lora_dropout = peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout
    lora.target_modules = [targets] if isinstance(targets, str) else sorted(targets)
    lora.use_rslora, lora.use_dora = bool(peft_config.use_rslora), bool(peft_config.use_dora)


def build_method_trainer(config: TrainJobConfig, loaded: Any, data: Any, run_dir: Path, callbacks: list,
                         rewards: list | None = None) -> Any:
    """The TRL trainer of this run's method (SFT, DPO or GRPO)."""
    import torch

    from playground.train.hf_args import lora_config

    method, device = config.tuning.method, loaded.device.type
    if method == "sft" and not config.tuning.start_adapter.strip():
        from playground.train.worker import build_trainer

        return build_trainer(config, loaded, data, run_dir, callbacks)
    model = _prepared_model(config, loaded)
    peft_config = None if config.tuning.start_adapter.strip() else lora_config(config.lora)
    where = dict(output_dir=str(run_dir / CHECKPOINTS), device_type=device,
                 bf16_supported=device == "cuda" and torch.cuda.is_bf16_supported())
    common = dict(model=model, processing_class=loaded.tokenizer, peft_config=peft_config, callbacks=callbacks)
    if method == "dpo":
        from trl import DPOTrainer

        from playground.train.dpo import dpo_config

        return DPOTrainer(args=dpo_config(config, **where), train_dataset=data.train, eval_dataset=data.eval,
                          **common)
    if method == "grpo":
        from trl import GRPOTrainer

        from playground.train.dpo import grpo_config

        rewards = rewards if rewards is not None else []
        args = grpo_config(config, [r.weight for r in rewards], **where)
        return GRPOTrainer(args=args, reward_funcs=rewards, train_dataset=data.train, **common)
    from trl import SFTTrainer

    from playground.train.hf_args import sft_config

    return SFTTrainer(args=sft_config(config, data.format, **where), train_dataset=data.train,
                      eval_dataset=data.eval, **common)


def method_rewards(config: TrainJobConfig) -> list | None:
    """GRPO's reward functions (shared by the trainer and the samples view); None for SFT and DPO."""
    if config.tuning.method != "grpo":
        return None
    from playground.train.rewards import build_rewards

    return build_rewards(config.tuning)


def method_setup(config: TrainJobConfig, rewards: list | None) -> dict[str, Any]:
    """The `method` event: what the live view says about the method and its reference model."""
    from playground.train.rewards import describe

    m = config.tuning
    start = m.start_adapter.strip()
    if m.method == "sft":
        reference = ""
    elif m.method == "grpo" and m.kl_beta == 0:
        reference = "none (KL beta 0)"
    else:
        reference = f"the starting adapter {start} (frozen copy)" if start else "the base model (adapter off)"
    return {"method": m.method, "start_adapter": start, "reference": reference,
            "rewards": describe(rewards) if rewards else ""}
