"""The training-loop clock the bare-TRL baselines share (bench/bare_*.py): from train begin to the last logged
step, with the steps and tokens logged by then, so tokens/s counts the loop only (not loading or saving)."""

from __future__ import annotations

import json
import time

from transformers import TrainerCallback


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
