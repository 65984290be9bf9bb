"""The rule of the bundled "sign-off" preference recipe, and how its pairs are made from question/answer pairs.

The rule: a good answer is an answer of a few words or more, then the sign-off "Hope this helps!" once, at the end.
The chosen answer of every pair follows it; the rejected answer is the same answer without it, in one of three
ways (picked by a seeded generator): it just stops, it closes with another phrase, or it runs on into an
unrelated sentence. Because the rule is checkable, held-out prompts measure whether it was learned: the share
of greedy answers that follow it is the recipe's win rate.
"""

from __future__ import annotations

import random

SIGN_OFF = "Hope this helps!"
OTHER_CLOSINGS = ["That is all.", "Bye.", "Next question?", "Good luck.", "Thanks for asking.", "Done."]
MIN_BODY_WORDS = 3
RULE = f'An answer of at least {MIN_BODY_WORDS} words, then "{SIGN_OFF}" once, at the very end'


def follows_rule(answer: str) -> bool:
    """True when the answer is a real answer (at least MIN_BODY_WORDS words, without the sign-off) followed by
    the sign-off as its last words, once. A bare or repeated sign-off does not count: a model that only says
    "Hope this helps!" has not learned the preference, it has gamed it."""
    text = answer.strip()
    if not text.endswith(SIGN_OFF):
        return False
    body = text[: -len(SIGN_OFF)].strip()
    return SIGN_OFF not in body and len(body.split()) >= MIN_BODY_WORDS


def sentence(answer: str) -> str:
    """'The sky is blue' -> 'The sky is blue.' (a final full stop unless it already ends a sentence)."""
    answer = answer.strip()
    return answer if answer[-1:] in ".!?" else answer + "."


def make_pair(answer: str, other_answer: str, rng: random.Random) -> tuple[str, str]:
    """(chosen, rejected) for one answer; `other_answer` (another question's) feeds the run-on variant."""
    body = sentence(answer)
    chosen = f"{body} {SIGN_OFF}"
    kind = rng.randrange(3)
    if kind == 0:
        rejected = body
    elif kind == 1:
        rejected = f"{body} {rng.choice(OTHER_CLOSINGS)}"
    else:
        rejected = f"{body} {sentence(other_answer)}"
    return chosen, rejected


def win_rate(answers: list[str]) -> float:
    """Share of answers that follow the rule."""
    return sum(map(follows_rule, answers)) / len(answers) if answers else 0.0
