"""What a training run is made of: data source, LoRA, quantization and trainer settings, as dataclasses.

The dataclasses are the only schema of the settings: each field's `metadata` carries its label, help line,
range and widget (keys in playground.train.schema), and the form, the coercion of form and API values, the
validation sentences and the API overrides are derived from it. Adding a setting = one field here + its test.

`TrainJobConfig` is written whole to `<run_dir>/config.json` and read back by the worker process, so every
field is plain JSON. `validate()` raises ValueError with a sentence naming the field, before anything starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from playground.data.sources import DataSource
from playground.fsutil import validate_name
from playground.model.quant import Quantization
from playground.train.launch import PROCESSES_LABEL, STRATEGIES, STRATEGY_LABEL, check_launch
from playground.train.methods import MethodSettings
from playground.train.schema import Setting, check_fields, settings_of

ALL_LINEAR = "all-linear"
SCHEDULERS = ["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"]
# Optimizers the trainer accepts by name; the bitsandbytes ones need a CUDA GPU.
CPU_OPTIMIZERS = ["adamw_torch", "adamw_torch_fused", "adafactor", "sgd"]
GPU_OPTIMIZERS = ["paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit"]
BIASES = ["none", "lora_only", "all"]
# auto = from the hardware and the method: fp32 on a CPU; on a GPU bf16 (fp16 on older ones) mixed precision for
# SFT and DPO, fp32 for GRPO (TrainJobConfig.full_precision says why). fp32 / 16-bit = that on a GPU, any method.
PRECISIONS = ["auto", "fp32", "16-bit"]
QUANTIZATIONS = [("None", "none"), ("8-bit", "8bit"), ("4-bit NF4 + double quant (QLoRA)", "4bit")]
EVALS_PER_RUN, PROBES_PER_RUN = 4, 8  # the schedule when the user leaves "every N steps" empty
# Settings a method ignores: DPO and GRPO take only dpo.SHARED_KEYS of the SFT arguments (no sequence length,
# packing or completion-only loss) and GRPO does not evaluate while training; SFT has no prompt cap. The form
# hides them for that method, and an adapter's playground.json (TrainJobConfig.flat_settings) leaves them out.
IGNORED_BY_METHOD: dict[str, tuple[str, ...]] = {
    "sft": ("max_prompt_length",),
    "dpo": ("max_seq_length", "packing", "completion_only_loss"),
    "grpo": ("max_seq_length", "max_prompt_length", "packing", "completion_only_loss", "eval_steps"),
}


def precision_choices(device_type: str) -> list[str]:
    """The Precision choices that run on this device: 16-bit (mixed precision) needs a CUDA GPU."""
    return PRECISIONS if device_type == "cuda" else [p for p in PRECISIONS if p != "16-bit"]


def every_n_steps(total_steps: int, per_run: int) -> int:
    """The interval that gives about `per_run` events over a run of `total_steps` (at least every step)."""
    return max(1, math.ceil(total_steps / per_run))


@dataclass
class LoraSettings:
    r: int = field(default=16, metadata=dict(
        label="LoRA rank r", help="Size of the low-rank update: more capacity, more memory (8–64 typical).",
        ge=1, le=1024, row="lora"))  # le: r=1e9 failed in the worker allocating; the model's bound: manager.check
    lora_alpha: float = field(default=32, metadata=dict(
        label="LoRA alpha", help="Scale of the update (alpha / r); often 2 × r.", gt=0, row="lora"))
    lora_dropout: float = field(default=0.05, metadata=dict(
        label="LoRA dropout", help="Dropout on the adapter's input while training (0 = off).", ge=0, lt=1,
        step=0.01, row="lora"))
    bias: str = field(default="none", metadata=dict(
        label="LoRA bias", help="Which biases train along with the adapter.", widget="dropdown", choices=BIASES,
        row="lora"))
    target_modules: list[str] = field(default_factory=lambda: [ALL_LINEAR], metadata=dict(
        label="Target modules", help="Layers that get an adapter; all-linear = every Linear but the LM head.",
        widget="checkboxgroup", choices=[ALL_LINEAR], open=True))
    use_rslora: bool = field(default=False, metadata=dict(
        label="rsLoRA", help="Scale by alpha/√r instead of alpha/r (steadier at high ranks).", row="variants"))
    use_dora: bool = field(default=False, metadata=dict(
        label="DoRA", help="Learn the weights' magnitude and direction separately (slower).", row="variants"))

    def validate(self) -> None:
        check_fields(self, "lora")
        if not self.target_modules:
            raise ValueError("Pick at least one target module (or all-linear).")

    def peft_target_modules(self) -> str | list[str]:
        """PEFT takes the string "all-linear" or a list of module names."""
        return ALL_LINEAR if ALL_LINEAR in self.target_modules else list(self.target_modules)


@dataclass
class TrainSettings:
    quantization: Quantization = field(default="none", metadata=dict(
        label="Quantization", help="Of the base model's training copy; 4-bit is QLoRA (~4x smaller frozen weights).",
        widget="radio", choices=QUANTIZATIONS, error="Quantization must be none, 8bit or 4bit (got {value!r}).",
        section="lora"))
    epochs: float = field(default=1.0, metadata=dict(
        label="Epochs", help="Passes over the training rows (API: epochs without max_steps trains for epochs).",
        gt=0, row="length"))
    max_steps: int | None = field(default=None, metadata=dict(  # set = stop after this many optimizer steps
        label="Max steps", help="Optimizer steps to train for (instead of epochs).", ge=1, row="length"))
    learning_rate: float = field(default=2e-4, metadata=dict(
        label="Learning rate", help="Typical LoRA: 1e-4 to 3e-3; too high and the loss turns NaN.", gt=0,
        row="lr"))
    lr_scheduler: str = field(default="cosine", metadata=dict(
        label="Scheduler", help="How the learning rate falls after warmup.", widget="dropdown", choices=SCHEDULERS,
        row="lr"))
    warmup: float = field(default=0.05, metadata=dict(
        label="Warmup", help="Below 1: a fraction of the steps; 1 or more: a number of steps.", ge=0, row="lr"))
    batch_size: int = field(default=4, metadata=dict(
        label="Batch size", help="Rows per step; memory grows with it.", ge=1, row="batch"))
    grad_accum: int = field(default=1, metadata=dict(
        label="Gradient accumulation", help="Steps summed per update (effective batch = batch × this).", ge=1,
        row="batch"))
    max_seq_length: int = field(default=256, metadata=dict(
        label="Max sequence length", help="Longer rows are truncated (see the token lengths).", ge=8,
        error="{label} must be at least 8 tokens (got {value}).", row="batch"))
    seed: int = field(default=42, metadata=dict(
        label="Seed", help="Same seed: same split, same initial adapter.", ge=0, lt=2**32,  # numpy's seed range
        error="{label} must be a whole number from 0 to 4294967295 (got {value}).", row="batch", sticky=True))
    optimizer: str = field(default="adamw_torch", metadata=dict(
        label="Optimizer", help="The paged / 8-bit optimizers need a CUDA GPU.", widget="dropdown",
        choices=CPU_OPTIMIZERS + GPU_OPTIMIZERS, error="Unknown optimizer {value!r}.", row="optim"))
    packing: bool = field(default=False, metadata=dict(
        label="Packing", help="Concatenate short rows into full sequences (fewer pad tokens).", row="optim"))
    gradient_checkpointing: bool = field(default=False, metadata=dict(
        label="Gradient checkpointing", help="Recompute activations: less memory, ~30 % slower.", row="optim"))
    # A CPU always trains in fp32 (bf16 there is ~10x slower); on a GPU, auto is fp32 for GRPO only (full_precision).
    # 8-bit (bitsandbytes) layers compute in fp16 whatever this says.
    precision: str = field(default="auto", metadata=dict(
        label="Precision", help="auto: fp32 on a CPU; on a GPU bf16, but fp32 for GRPO. fp32 (2× the weights' memory) "
        "/ 16-bit: that on a GPU for any method.",
        widget="dropdown", choices=PRECISIONS, error="Unknown precision {value!r}: choose auto, fp32 or 16-bit.",
        row="optim", sticky=True))  # a hardware choice: a recipe pick keeps it, like the seed
    processes: int = field(default=1, metadata=dict(  # > 1: `accelerate launch` (playground.train.launch)
        label=PROCESSES_LABEL, help="Train on several GPUs at once, one process each (the batch size is per "
        "process); on a CPU, 2 processes show how it works.", widget="dropdown", choices=[1], open=True, ge=1,
        row="scale", sticky=True))
    strategy: str = field(default="ddp", metadata=dict(
        label=STRATEGY_LABEL, help="With several processes: a full model copy per GPU (DDP), or the weights "
        "sharded across the GPUs for a model too big for one (FSDP, ZeRO-3).", widget="dropdown",
        choices=STRATEGIES, row="scale", sticky=True))
    eval_steps: int | None = field(default=None, metadata=dict(  # when there is an eval split
        label="Eval every N steps", help=f"Empty = about {EVALS_PER_RUN} evaluations per run.", ge=1,
        blank="auto", row="schedule"))
    save_steps: int = field(default=50, metadata=dict(
        label="Checkpoint every N steps", help="Lets an interrupted run resume (e.g. after an app restart).",
        ge=1, row="schedule"))
    probe_every: int | None = field(default=None, metadata=dict(
        label="Probe every N steps", help=f"Empty = about {PROBES_PER_RUN} live probes per run; 0 = off.", ge=0,
        error="{label} must be 0 (off) or more (got {value}).", blank="auto", row="schedule"))
    probe_max_new_tokens: int = field(default=48, metadata=dict(
        label="Probe answer length", help="Tokens generated per probe answer.", ge=1, row="schedule",
        sticky=True))
    probe_prompt: str = field(default="", metadata=dict(
        label="Probe prompt", help="Empty = the recipe's probe, or the first eval row."))

    def validate(self, device_type: str = "cpu") -> None:
        check_fields(self, "train", skip=("epochs",) if self.max_steps is not None else ())
        if self.learning_rate > 1:
            raise ValueError(f"Learning rate {self.learning_rate} is far too high (typical LoRA: 1e-4 to 3e-3).")
        if device_type != "cuda" and self.optimizer in GPU_OPTIMIZERS:
            raise ValueError(f"The optimizer {self.optimizer} needs a CUDA GPU (bitsandbytes); "
                             f"on {device_type} use adamw_torch.")
        if device_type == "mps" and self.quantization != "none":
            raise ValueError("bitsandbytes quantization does not run on Apple MPS: choose quantization none.")
        if self.precision not in precision_choices(device_type):  # 16-bit: the one choice a device can lack
            raise ValueError(f"Precision 16-bit (bf16 / fp16 mixed precision) needs a CUDA GPU: on {device_type} "
                             "choose auto or fp32.")
        check_launch(self.processes, self.strategy, device_type, self.quantization)

    def eval_interval(self) -> int | float:
        """The trainer's eval_steps: the user's, or a fraction of the run (the trainer resolves it to
        ceil(total_steps * fraction), i.e. every_n_steps(total_steps, EVALS_PER_RUN))."""
        return self.eval_steps if self.eval_steps is not None else 1 / EVALS_PER_RUN


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
    tuning: MethodSettings = field(default_factory=MethodSettings)  # SFT / DPO / GRPO (train.methods)
    adapter_name: str = field(default="my-adapter", metadata=dict(
        label="Adapter name", help="Letters, digits, - _ . : its folder under adapters/.", row="name"))
    overwrite: bool = field(default=False, metadata=dict(
        label="Overwrite an adapter of that name", help="Otherwise a taken name gets a -2, -3 … suffix.",
        row="name", sticky=True))
    data_dir: str = ""  # the app's data dir: adapters go to <data_dir>/adapters/<name>

    def validate(self, device_type: str | None = None) -> None:
        """Raise ValueError with a user-facing sentence for the first bad field."""
        validate_name(self.adapter_name, "adapter name")
        self.data.validate()
        self.lora.validate()
        self.train.validate(device_type or (self.base.device or "cpu"))
        self.tuning.validate(self.train.batch_size, self.train.grad_accum)

    @property
    def full_precision(self) -> bool:
        """Whether a GPU trains this job in fp32 (a CPU always does): Precision fp32, or auto with GRPO. On an H200
        the GRPO recipe learnt less in bf16 in each of 3 seeds (held-out reward; README "GPU notes"), likely as GRPO
        trains on the log-probabilities of answers it sampled, and bf16 rounding makes the two disagree."""
        return self.train.precision == "fp32" or (self.train.precision == "auto" and self.tuning.method == "grpo")

    @property
    def load_dtype(self) -> str | None:
        """The dtype the training copy is loaded in (LoadSettings.dtype): None = from the hardware (sources.pick_dtype:
        bf16 / fp16 on a GPU, fp32 on a CPU), or float32 in full precision."""
        return "float32" if self.full_precision else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainJobConfig":
        """Inverse of to_dict; unknown keys are ignored so older run folders still load."""
        base_names = {f.name for f in dataclasses.fields(BaseModelRef)}
        base = BaseModelRef(**{k: v for k, v in (d.get("base") or {}).items() if k in base_names})
        nested = [d, *(d.get(section) or {} for section in SECTIONS)]
        flat = {k: v for values in nested for k, v in values.items() if k in SETTINGS}
        return apply_overrides(cls(base=base, data_dir=d.get("data_dir", "")), flat)

    def flat_settings(self) -> dict[str, Any]:
        """LoRA + training + data-handling settings as one flat dict (the adapter's playground.json): only those
        that applied to the run's method (IGNORED_BY_METHOD)."""
        flat = {**dataclasses.asdict(self.lora), **dataclasses.asdict(self.train),
                "completion_only_loss": self.data.completion_only_loss,
                "use_chat_template": self.data.use_chat_template, "eval_fraction": self.data.eval_fraction,
                "data_format": self.data.format, **self.tuning.flat()}
        ignored = IGNORED_BY_METHOD.get(self.tuning.method, ())
        if self.train.max_steps:  # max steps ruled the run's length: its epochs box had no effect
            ignored = (*ignored, "epochs")
        return {k: v for k, v in flat.items() if k not in ignored}


SECTIONS = {"tuning": MethodSettings, "data": DataSource, "lora": LoraSettings, "train": TrainSettings}
# Every setting by its flat name, in form order: data, LoRA, training, then the adapter's name.
SETTINGS: dict[str, Setting] = {name: s for section, cls in [*SECTIONS.items(), ("", TrainJobConfig)]
                                for name, s in settings_of(cls, section).items()}


def apply_overrides(config: TrainJobConfig, overrides: dict[str, Any]) -> TrainJobConfig:
    """Return a copy with flat `{"r": 8, "learning_rate": 1e-3, "eval_fraction": 0}` settings applied to
    whichever section owns each key, each value coerced to its field's type (form values, recipe defaults,
    API callers, stored configs). Unknown keys and uncoercible values raise ValueError."""
    changes: dict[str, dict[str, Any]] = {section: {} for section in ("", *SECTIONS)}
    for key, value in overrides.items():
        setting = SETTINGS.get(key)
        if setting is None:
            raise ValueError(f"Unknown setting {key!r}.")
        changes[setting.section][key] = setting.coerce(value)
    sections = {name: dataclasses.replace(getattr(config, name), **changes[name]) for name in SECTIONS}
    return dataclasses.replace(config, **changes[""], **sections)


def precision_flags(device_type: str, bf16_supported: bool = False, full_precision: bool = False) -> dict[str, bool]:
    """bf16/fp16 mixed precision on a GPU (from its hardware), or none (TrainJobConfig.full_precision). TRL defaults
    to bf16=True, which is ~10x slower on a CPU without native bf16, so CPU and MPS get both flags False explicitly."""
    if device_type == "cuda" and not full_precision:
        return {"bf16": bf16_supported, "fp16": not bf16_supported}
    return {"bf16": False, "fp16": False}
