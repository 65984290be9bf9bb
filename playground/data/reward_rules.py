"""The rules GRPO's built-in rewards score answers with: plain functions of the prompt's and the answer's text,
each returning 0–1. No user code: a rule is picked and weighted on the form, and its parameters are data.

The training side (playground.train.rewards) wraps them as TRL reward functions; the held-out evaluation
(playground.compare.reward_eval) scores greedy answers with the same functions, from an adapter's settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import regex  # like `re` (same syntax), plus a timeout; a transformers dependency, pinned in requirements.txt

from playground.data.pig_latin import aligned_accuracy, rule_accuracy, to_pig_latin

PIG_LATIN_PREFIX = re.compile(r"^\s*translate\s+(?:this\s+)?(?:in)?to\s+pig\s+latin\s*:\s*", re.IGNORECASE)
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
Score = Callable[[str, str], float]  # (prompt text, answer text) -> 0..1
# A pattern that backtracks catastrophically (e.g. ^(a|aa)+$ takes exponential time on 'aaa…a!') would
# hold a GRPO step, and with it the server's one training slot, for ever: a search stops after this long.
REGEX_TIMEOUT_S = 0.5


def pig_latin_reference(prompt: str) -> str:
    """The rule's translation of the prompt's sentence (the text after "Translate to Pig Latin:", or the whole
    prompt): what an answer is scored against."""
    return to_pig_latin(PIG_LATIN_PREFIX.sub("", prompt, count=1))


def score_pig_latin(prompt: str, answer: str) -> float:
    """Word accuracy of the answer against `pig_latin_reference(prompt)`, extra words counting against it
    (`rule_accuracy`)."""
    return rule_accuracy(answer.strip().lower(), pig_latin_reference(prompt))


def pig_latin_shape(prompt: str, answer: str) -> tuple[bool, float]:
    """What a `score_pig_latin` figure is made of: (the answer has the reference's number of words, its words
    matched in order). The positional score also rewards the right word count, since one dropped word makes
    every later one wrong: a score that rises while the aligned one does not is the answers' length."""
    answer, reference = answer.strip().lower(), pig_latin_reference(prompt)
    return len(answer.split()) == len(reference.split()), aligned_accuracy(answer, reference)


def score_length(answer: str, target: int) -> float:
    """1 at exactly `target` words, falling linearly to 0 at 0 or 2 × target words."""
    words = len(answer.split())
    return max(0.0, 1.0 - abs(words - target) / target)


def score_regex(answer: str, pattern: str) -> float:
    """1 if the pattern is found in the (stripped) answer, else 0; a ValueError naming the pattern if the search
    runs past REGEX_TIMEOUT_S."""
    try:
        return 1.0 if regex.search(pattern, answer.strip(), timeout=REGEX_TIMEOUT_S) else 0.0
    except TimeoutError:
        raise ValueError(f"The pattern {pattern!r} took over {REGEX_TIMEOUT_S} s on one answer: it backtracks "
                         "catastrophically (a repeat of overlapping choices, like (a|aa)+); simplify it.") from None


def score_words(answer: str, include: list[str], exclude: list[str]) -> float:
    """Share of the required words present minus the share of the banned words present, clipped to 0–1.
    Words are matched whole and case-insensitively ("hope" is not found in "hopeful")."""
    present = {w.lower() for w in WORD.findall(answer)}
    phrase = " " + " ".join(WORD.findall(answer.lower())) + " "

    def found(word: str) -> bool:
        return word in present or f" {word} " in phrase  # multi-word entries match as a phrase

    got = sum(found(w) for w in include) / len(include) if include else 1.0
    bad = sum(found(w) for w in exclude) / len(exclude) if exclude else 0.0
    return min(1.0, max(0.0, got - bad))


def word_list(text: str) -> list[str]:
    """'Hope, thanks ,' -> ['hope', 'thanks']."""
    return [w.strip().lower() for w in (text or "").split(",") if w.strip()]


def rules_from_settings(s: dict[str, Any]) -> list[tuple[str, float, Score]]:
    """(name, weight, score) of the rules switched on (weight > 0) in GRPO settings (the MethodSettings fields,
    as a dict: also what an adapter's playground.json records), in form order."""
    include, exclude = word_list(s.get("must_include", "")), word_list(s.get("must_exclude", ""))
    target, pattern = int(s.get("length_target") or 20), s.get("regex", "")
    rules: list[tuple[str, float, Score]] = [
        ("pig_latin", float(s.get("reward_pig_latin") or 0), score_pig_latin),
        ("length", float(s.get("reward_length") or 0), lambda p, a: score_length(a, target)),
        ("pattern", float(s.get("reward_regex") or 0), lambda p, a: score_regex(a, pattern)),
        ("words", float(s.get("reward_words") or 0), lambda p, a: score_words(a, include, exclude)),
    ]
    return [r for r in rules if r[1] > 0]
