"""What a training run is made of: data source, LoRA, quantization and trainer settings, as dataclasses.

`TrainJobConfig` is written whole to `<run_dir>/config.json` and read back by the worker process, so every
field is plain JSON. `validate()` raises ValueError with a sentence naming the field, before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from playground.data.sources import DataSource
from playground.fsutil import validate_name

Quantization = Literal["none", "8bit", "4bit"]
ALL_LINEAR = "all-linear"
SCHEDULERS = ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]
# Optimizers the trainer accepts by name; the bitsandbytes ones need a CUDA GPU.
CPU_OPTIMIZERS = ["adamw_torch", "adamw_torch_fused", "adafactor", "sgd"]
GPU_OPTIMIZERS = ["paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit"]
BIASES = ["none", "lora_only", "all"]


@dataclass
class LoraSettings:
    r: int = 16
    lora_alpha: float = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR])
    use_rslora: bool = False
    use_dora: bool = False
    bias: str = "none"

    def validate(self) -> None:
        if not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"LoRA rank r must be a whole number of at least 1 (got {self.r}).")
        if self.lora_alpha <= 0:
            raise ValueError(f"LoRA alpha must be greater than 0 (got {self.lora_alpha}).")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"LoRA dropout must be between 0 and 1 (got {self.lora_dropout}).")
        if not self.target_modules:
            raise ValueError("Pick at least one target module (or all-linear).")
        if self.bias not in BIASES:
            raise ValueError(f"LoRA bias must be one of {', '.join(BIASES)} (got {self.bias!r}).")

    def peft_target_modules(self) -> str | list[str]:
        """PEFT takes the string "all-linear" or a list of module names."""
        return ALL_LINEAR if ALL_LINEAR in self.target_modules else list(self.target_modules)


@dataclass
class TrainSettings:
    quantization: Quantization = "none"  # "4bit" = QLoRA: NF4 + double quant
    epochs: float = 1.0
    max_steps: int | None = None  # set = stop after this many optimizer steps (overrides epochs)
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup: float = 0.05  # < 1: fraction of the steps; >= 1: a step count
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_length: int = 256
    packing: bool = False
    gradient_checkpointing: bool = False
    optimizer: str = "adamw_torch"
    seed: int = 42
    eval_steps: int = 20  # evaluate every N steps (when there is an eval split)
    save_steps: int = 50  # checkpoint every N steps (resume after an app restart)
    probe_every: int = 10  # 0 = no live probe
    probe_prompt: str = ""
    probe_max_new_tokens: int = 48

    def validate(self, device_type: str = "cpu") -> None:
        def positive_int(name: str, label: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a whole number of at least 1 (got {value}).")

        if self.quantization not in ("none", "8bit", "4bit"):
            raise ValueError(f"Quantization must be none, 8bit or 4bit (got {self.quantization!r}).")
        if self.max_steps is None:
            if not self.epochs or not math.isfinite(self.epochs) or self.epochs <= 0:
                raise ValueError(f"Epochs must be greater than 0 (got {self.epochs}).")
        else:
            positive_int("max_steps", "Max steps")
        if not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(f"Learning rate must be greater than 0 (got {self.learning_rate}).")
        if self.learning_rate > 1:
            raise ValueError(f"Learning rate {self.learning_rate} is far too high (typical LoRA: 1e-4 to 3e-3).")
        if self.lr_scheduler not in SCHEDULERS:
            raise ValueError(f"Scheduler must be one of {', '.join(SCHEDULERS)} (got {self.lr_scheduler!r}).")
        if self.warmup < 0:
            raise ValueError(f"Warmup must be 0 or more (got {self.warmup}).")
        positive_int("batch_size", "Batch size")
        positive_int("grad_accum", "Gradient accumulation")
        positive_int("max_seq_length", "Max sequence length")
        if self.max_seq_length < 8:
            raise ValueError(f"Max sequence length must be at least 8 tokens (got {self.max_seq_length}).")
        positive_int("eval_steps", "Eval every N steps")
        positive_int("save_steps", "Checkpoint every N steps")
        if not isinstance(self.probe_every, int) or self.probe_every < 0:
            raise ValueError(f"Probe every N steps must be 0 (off) or more (got {self.probe_every}).")
        positive_int("probe_max_new_tokens", "Probe answer length")
        if self.optimizer not in CPU_OPTIMIZERS + GPU_OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}.")
        if device_type != "cuda" and self.optimizer in GPU_OPTIMIZERS:
            raise ValueError(f"The optimizer {self.optimizer} needs a CUDA GPU (bitsandbytes); "
                             f"on {device_type} use adamw_torch.")
        if device_type == "mps" and self.quantization != "none":
            raise ValueError("bitsandbytes quantization does not run on Apple MPS: choose quantization none.")


@dataclass
class BaseModelRef:
    """The app's base model as the worker must reload it (its own copy, in its own process)."""

    name: str = ""
    source: str = ""  # what the user loaded: 'bundled', a hub id, a folder
    fingerprint: str = ""
    checkpoint_dir: str | None = None  # plain safetensors folder; None = reload `source`
    device: str | None = None
    trust_remote_code: bool = False

    @property
    def load_source(self) -> str:
        return self.checkpoint_dir or self.source


@dataclass
class TrainJobConfig:
    data: DataSource = field(default_factory=DataSource)
    lora: LoraSettings = field(default_factory=LoraSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    base: BaseModelRef = field(default_factory=BaseModelRef)
    adapter_name: str = "my-adapter"
    overwrite: bool = False  # replace an adapter of the same name instead of adding a suffix
    data_dir: str = ""  # the app's data dir: adapters go to <data_dir>/adapters/<name>

    def validate(self, device_type: str | None = None) -> None:
        """Raise ValueError with a user-facing sentence for the first bad field."""
        validate_name(self.adapter_name, "adapter name")
        self.data.validate()
        self.lora.validate()
        self.train.validate(device_type or (self.base.device or "cpu"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainJobConfig":
        """Inverse of to_dict; unknown keys are ignored so older run folders still load."""
        def build(kind: type, values: dict[str, Any] | None) -> Any:
            names = {f.name for f in dataclasses.fields(kind)}
            return kind(**{k: v for k, v in (values or {}).items() if k in names})

        top = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        return cls(**{**top, "data": build(DataSource, d.get("data")), "lora": build(LoraSettings, d.get("lora")),
                      "train": build(TrainSettings, d.get("train")), "base": build(BaseModelRef, d.get("base"))})

    def flat_settings(self) -> dict[str, Any]:
        """LoRA + training + data-handling settings as one flat dict (the adapter's playground.json)."""
        return {**dataclasses.asdict(self.lora), **dataclasses.asdict(self.train),
                "completion_only_loss": self.data.completion_only_loss,
                "use_chat_template": self.data.use_chat_template, "eval_fraction": self.data.eval_fraction,
                "data_format": self.data.format}


def apply_overrides(config: TrainJobConfig, overrides: dict[str, Any]) -> TrainJobConfig:
    """Return a copy with flat `{"r": 8, "learning_rate": 1e-3, "eval_fraction": 0}` overrides applied to
    whichever section owns each key (recipe defaults, API callers). Unknown keys raise ValueError."""
    sections = {"lora": config.lora, "train": config.train, "data": config.data}
    new = {name: dataclasses.asdict(obj) for name, obj in sections.items()}
    top = {"adapter_name": config.adapter_name, "overwrite": config.overwrite}
    for key, value in overrides.items():
        if key in top:
            top[key] = value
            continue
        owner = next((name for name, values in new.items() if key in values), None)
        if owner is None:
            raise ValueError(f"Unknown setting {key!r}.")
        new[owner][key] = value
    return dataclasses.replace(config, **top, lora=LoraSettings(**new["lora"]), train=TrainSettings(**new["train"]),
                               data=DataSource(**new["data"]))


def precision_flags(device_type: str, bf16_supported: bool = False) -> dict[str, bool]:
    """bf16/fp16 mixed precision from the hardware. TRL defaults to bf16=True, which is ~10x slower on a CPU
    without native bf16, so CPU and MPS get both flags False explicitly."""
    if device_type == "cuda":
        return {"bf16": bf16_supported, "fp16": not bf16_supported}
    return {"bf16": False, "fp16": False}
