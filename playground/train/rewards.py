"""GRPO's built-in rewards as TRL reward functions: readable rules (playground.data.reward_rules) picked and
weighted on the form, never user code.

`Reward` wraps one rule as `f(prompts, completions, **kwargs) -> list[float]` named after it, so TRL logs
`rewards/<name>/mean` and `/std` and trains on their weighted sum (GRPOConfig.reward_weights). It also keeps
its last batch, which the live view samples.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from playground.data.messages import text_of
from playground.data.reward_rules import rules_from_settings
from playground.train.methods import MethodSettings


class Reward:
    """One rule as a TRL reward function; `__name__` names its metrics (rewards/<name>/mean)."""

    def __init__(self, name: str, weight: float, score: Any):
        self.__name__, self.weight, self.score = name, weight, score  # score: (prompt_text, answer_text) -> float
        self.last: list[tuple[str, str, float]] = []  # (prompt, answer, reward) of the last batch

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        texts = [(text_of(p), text_of(c)) for p, c in zip(prompts, completions)]
        values = [float(self.score(p, a)) for p, a in texts]
        self.last = [(p, a, v) for (p, a), v in zip(texts, values)]
        return values


def build_rewards(m: MethodSettings) -> list[Reward]:
    """The rewards switched on (weight > 0), in form order; settings that cannot score answers (a bad pattern,
    no reward on) are a ValueError naming the field (MethodSettings.validate_rewards)."""
    m.validate_rewards()
    return [Reward(name, weight, score) for name, weight, score in rules_from_settings(dataclasses.asdict(m))]


def total_reward(rewards: list[Reward], prompt: str, answer: str) -> float:
    """The weighted sum TRL trains on (its reward_weights), for one answer."""
    return sum(r.weight * r.score(prompt, answer) for r in rewards)


def describe(rewards: list[Reward]) -> str:
    return " + ".join(f"{r.weight:g} × {r.__name__}" for r in rewards)
