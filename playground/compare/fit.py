"""Held-out rows longer than the model's context: cut from the left (the start of the prompt goes first), as the
Decode tab does with a long prompt, so a long row is scored on what the model can read instead of crashing the
position embeddings with an IndexError. Shared by the loss, preference and reward evaluations."""

from __future__ import annotations

from typing import Any

Row = tuple[list[int], list[int]]
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def context_of(model: Any) -> int | None:
    """How many tokens `model` (plain or PEFT-wrapped) can attend to, from its config; None when it says nothing."""
    cfg = getattr(model, "config", None)
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    for key in POSITION_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_row(prompt: list[int], full: list[int], limit: int | None) -> Row:
    """(prompt, prompt + answer) with the oldest tokens dropped until the whole row fits in `limit`."""
    over = len(full) - limit if limit else 0
    if over <= 0:
        return prompt, full
    full = full[over:]
    return full[:max(0, len(prompt) - over)], full


def fit_pair(prompt: list[int], answer: list[int], limit: int | None) -> Row:
    """(prompt, answer) for a log-probability: the prompt is cut from the left (one token stays, it predicts the
    answer's first); an answer that alone is too long keeps its first tokens."""
    if not limit or len(prompt) + len(answer) <= limit:
        return prompt, answer
    keep = max(1, limit - len(answer))
    prompt = prompt[-keep:]
    return prompt, answer[:limit - len(prompt)]


def fit_prompts(prompts: list[list[int]], max_new_tokens: int, limit: int | None) -> tuple[list[list[int]], int]:
    """(prompts, max new tokens) so that prompt + answer fit: the answer keeps at most half the context."""
    if not limit:
        return prompts, max_new_tokens
    new = max(1, min(max_new_tokens, limit // 2))
    room = limit - new
    return [p[-room:] for p in prompts], new
