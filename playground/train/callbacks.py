"""TrainerCallbacks of the training worker: report to the event log, probe the model, stop on request or NaN.

They only read the trainer state and set `control` flags; the training loop itself is TRL's.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from playground.train.config import PROBES_PER_RUN, every_n_steps
from playground.train.distributed import agree, parent_gone
from playground.train.events import EventLog, non_finite_key


def peak_memory_mb(device_type: str) -> float:
    """CUDA: peak allocated tensor memory; elsewhere: the process's peak resident set size."""
    if device_type == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class EventLogCallback(TrainerCallback):
    """Append train loss / LR / grad norm (every step), eval loss and checkpoints to the event log.

    Tokens/s counts only the time inside optimizer steps, so probes and evals do not make training look slow.
    Keep it first in the callback list: its on_step_end then runs before the probe's.
    """

    def __init__(self, log: EventLog, device_type: str):
        self.log, self.device_type = log, device_type
        self.t_begin = time.time()
        self._step_start = 0.0
        self._busy = 0.0  # seconds inside steps since the last log
        self._tokens: float | None = None  # num_tokens at the last log
        self._start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.t_begin = time.time()
        self._busy, self._tokens, self._start_step = 0.0, None, state.global_step
        self.log.emit("train_begin", total_steps=state.max_steps, start_step=state.global_step,
                      epochs=args.num_train_epochs)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        self._busy += time.time() - self._step_start

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        now = time.time()
        if "loss" in logs:
            tokens = float(logs.get("num_tokens") or 0.0)
            rate = None
            if self._tokens is not None and self._busy > 0 and tokens > self._tokens:
                rate = (tokens - self._tokens) / self._busy
            elif self._tokens is None and self._busy > 0 and tokens and self._start_step == 0:
                rate = tokens / self._busy  # first log of a fresh run (after a resume the count is unknown)
            self._tokens, self._busy = tokens, 0.0
            self.log.emit("log", step=state.global_step, loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                          grad_norm=logs.get("grad_norm"), epoch=logs.get("epoch"), num_tokens=tokens,
                          tokens_per_s=rate, peak_mem_mb=round(peak_memory_mb(self.device_type), 1),
                          elapsed_s=round(now - self.t_begin, 2))
        if "eval_loss" in logs:
            self.log.emit("eval", step=state.global_step, eval_loss=logs["eval_loss"])

    def on_save(self, args, state, control, **kwargs):
        self.log.emit("checkpoint", step=state.global_step)


class NanGuardCallback(TrainerCallback):
    """Stop at the first non-finite loss or gradient norm: training cannot recover from it."""

    def __init__(self) -> None:
        self.tripped_at: int | None = None
        self.what = ""

    def on_log(self, args, state, control, logs=None, **kwargs):
        key = non_finite_key(logs)
        if key is not None:
            self.tripped_at, self.what = state.global_step, key
            control.should_training_stop = True


class StopCallback(TrainerCallback):
    """End the run at the next step when the app drops a stop-file into the run folder, or when the app that
    started this worker has gone away (then save a checkpoint first, so the run can be resumed). With several
    ranks both flags are all-reduced, so every rank stops at the same step (playground.train.distributed)."""

    def __init__(self, stop_file: Path, parent_pid: int | None):
        self.stop_file, self.parent_pid = stop_file, parent_pid
        self.reason: str | None = None  # "user" | "parent"

    def requested(self) -> bool:
        return agree(self.stop_file.exists())[0]

    def on_step_end(self, args, state, control, **kwargs):
        user, parent = agree(self.stop_file.exists(), self.parent_pid is not None and parent_gone(self.parent_pid))
        if user:
            self.reason = "user"
            control.should_training_stop = True
        elif parent:
            self.reason = "parent"
            control.should_save = True
            control.should_training_stop = True


class ProbeCallback(TrainerCallback):
    """Every N steps, answer a fixed prompt greedily so the behaviour change is visible while the loss falls.

    `every` None = about PROBES_PER_RUN probes over the run, resolved when training begins (the step count is
    known then, also for a run measured in epochs); 0 = off."""

    def __init__(self, log: EventLog, tokenizer: Any, prompt: str, every: int | None, max_new_tokens: int,
                 use_chat_template: bool):
        self.log, self.tokenizer, self.prompt = log, tokenizer, prompt
        self.every, self.max_new_tokens, self.chat = every, max_new_tokens, use_chat_template
        self.last_step: int | None = None

    def answer(self, model: Any) -> str:
        tok = self.tokenizer
        if self.chat and tok.chat_template:
            enc = tok.apply_chat_template([{"role": "user", "content": self.prompt}], add_generation_prompt=True,
                                          return_tensors="pt", return_dict=True)
        else:
            enc = tok(self.prompt, return_tensors="pt")
        device = next(p.device for p in model.parameters())
        enc = {k: v.to(device) for k, v in enc.items()}
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False, use_cache=True,
                                     pad_token_id=tok.pad_token_id)
        finally:
            model.train(was_training)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def _probe(self, state, model) -> None:
        if not self.prompt or model is None or self.last_step == state.global_step:
            return
        started = time.time()
        self.last_step = state.global_step
        self.log.emit("probe", step=state.global_step, answer=self.answer(model),
                      seconds=round(time.time() - started, 2))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.every is None:
            self.every = every_n_steps(state.max_steps, PROBES_PER_RUN)
        if self.every:
            self._probe(state, model)  # step 0: the base model's answer, for comparison

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._probe(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.every:
            self._probe(state, model)
