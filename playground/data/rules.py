"""Checkable rules of the bundled preference recipes: recipe id -> (what the rule says, the checker).

A rule turns "which answer is better" into something a program can score on held-out prompts, so a preference
recipe's win rate (share of greedy answers that follow the rule) needs no judge model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from playground.data import sign_off


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[str], bool]


RULES = {"sign-off": Rule("sign-off", sign_off.RULE, sign_off.follows_rule)}


def rule_for(dataset: str) -> Rule | None:
    """The rule of a bundled recipe (by id), None for anything else."""
    return RULES.get(dataset)
