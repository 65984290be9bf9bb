"""What the bare-TRL baselines share (bench/bare_*.py): their common command line and trainer settings, and the
training-loop clock: from train begin to the last logged step, with the steps and tokens logged by then, so
tokens/s counts the loop only (not loading or saving). Plain libraries only: the baselines stay free of
playground code."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from peft import LoraConfig
from transformers import TrainerCallback


def bare_parser(name: str, **options: int | float | str) -> argparse.ArgumentParser:
    """`MODEL DATA OUT`, LoRA `--r 16 --alpha 32`, `--output-dir /tmp/bare-NAME`, and one `--key value` option per
    keyword (`max_length` -> `--max-length`), typed as its default. Scripts add their special options after."""
    p = argparse.ArgumentParser()
    for positional in ("model", "data", "out"):
        p.add_argument(positional)
    for key, default in {"r": 16, "alpha": 32.0, **options}.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(default), default=default)
    p.add_argument("--output-dir", default=f"/tmp/bare-{name}")
    p.add_argument("--fp32", action="store_true",
                   help="full precision on a GPU too (an app job in full precision: Precision fp32, or auto for GRPO)")
    return p


def model_dtype(a: argparse.Namespace) -> torch.dtype:
    """The weights' dtype: bf16 on a GPU that has it, else fp16 on a GPU, fp32 on a CPU or with --fp32."""
    if not torch.cuda.is_available() or a.fp32:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def loop_settings(a: argparse.Namespace) -> dict[str, Any]:
    """The TRL config arguments every baseline sets alike: its steps, batch and learning rate, precision from the
    hardware (model_dtype), a log every step, no checkpoints, fixed seeds."""
    cuda = torch.cuda.is_available()
    dtype = model_dtype(a)
    if cuda:  # the attention kernels the app's worker trains with (playground/train/cuda_attention.py says why)
        torch.backends.cuda.enable_cudnn_sdp(False)
    return dict(output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=a.batch, learning_rate=a.lr,
                logging_steps=1, save_strategy="no", report_to="none", bf16=dtype == torch.bfloat16,
                fp16=dtype == torch.float16, activation_checkpointing=False, disable_tqdm=True, seed=42, data_seed=42,
                use_cpu=not cuda, dataloader_pin_memory=cuda)


def lora(a: argparse.Namespace, dropout: float) -> LoraConfig:
    """LoRA on every linear layer with the command line's rank and alpha."""
    return LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=dropout, target_modules="all-linear",
                      task_type="CAUSAL_LM")


class Clock(TrainerCallback):
    def __init__(self) -> None:
        self.begin, self.last, self.steps, self.tokens = 0.0, 0.0, 0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.begin = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last, self.steps = time.time(), state.global_step
            self.tokens = float(logs.get("num_tokens") or 0)


def write_rate(clock: Clock, out: str, per_step: int, unit: str) -> None:
    """The baseline's result file: loop seconds, steps, and `unit` = items per second of the loop."""
    train_s = clock.last - clock.begin
    with open(out, "w") as f:
        json.dump({"train_s": round(train_s, 2), "steps": clock.steps, unit: clock.steps * per_step / train_s}, f)
