"""What DPO and GRPO runs add to the event log: TRL's own reward metrics per step, and GRPO's sampled answers.

`metrics` events carry TRL's keys unchanged (DPOTrainer: rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/…; GRPOTrainer: reward, reward_std, rewards/<rule>/mean|std, completions/mean_length,
kl, entropy), so what the tab draws is exactly what TRL computed. Evaluation metrics come with mode "eval".
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

from playground.train.events import EventLog

PREFIXES = ("rewards/", "logps/", "completions/mean_length")
KEYS = ("reward", "reward_std", "kl", "entropy", "frac_reward_zero_std")
SAMPLES_SHOWN = 4


def reward_metrics(logs: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """(train metrics, eval metrics) of one TRL log line: the reward keys only, finite numbers only."""
    train, evals = {}, {}
    for key, value in logs.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            continue
        name, target = (key[5:], evals) if key.startswith("eval_") else (key, train)
        if name.startswith(PREFIXES) or name in KEYS:
            target[name] = float(value)
    return train, evals


class RewardMetricsCallback(TrainerCallback):
    def __init__(self, log: EventLog):
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs):
        train, evals = reward_metrics(logs or {})
        if train:
            self.log.emit("metrics", step=state.global_step, mode="train", values=train)
        if evals:
            self.log.emit("metrics", step=state.global_step, mode="eval", values=evals)


class SamplesCallback(TrainerCallback):
    """Every N steps: a few of the answers GRPO just sampled, with the reward each rule gave them."""

    def __init__(self, log: EventLog, rewards: list[Any], every: int):
        self.log, self.rewards, self.every = log, rewards, max(1, every)

    def samples(self) -> list[dict[str, Any]]:
        if not self.rewards or not self.rewards[0].last:
            return []
        rows = []
        for i, (prompt, answer, _) in enumerate(self.rewards[0].last[:SAMPLES_SHOWN]):
            parts = {r.__name__: r.last[i][2] for r in self.rewards if len(r.last) > i}
            total = sum(r.weight * parts[r.__name__] for r in self.rewards if r.__name__ in parts)
            rows.append({"prompt": prompt, "answer": answer, "reward": round(total, 4),
                         "parts": {k: round(v, 4) for k, v in parts.items()}})
        return rows

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 or state.global_step == 1:
            rows = self.samples()
            if rows:
                self.log.emit("samples", step=state.global_step, samples=rows)
