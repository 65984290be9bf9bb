"""Held-out rows longer than the model's context: cut from the left (the start of the prompt goes first), as the
Decode tab does with a long prompt, so a long row is scored on what the model can read instead of crashing the
position embeddings with an IndexError. Shared by the loss, preference and reward evaluations."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence

from playground.model.inspect import context_length

Row = tuple[list[int], list[int]]


def padded(rows: list[list[int]], value: int, side: str = "right") -> torch.Tensor:
    """Rows of ids as one (rows × longest) tensor, filled with `value` on `side` (torch's pad_sequence): right
    for scoring, left for generation (a decoder-only model continues from the last position)."""
    return pad_sequence([torch.tensor(r, dtype=torch.long) for r in rows], batch_first=True, padding_value=value,
                        padding_side=side)


def attention_mask(rows: list[list[int]], side: str = "right") -> torch.Tensor:
    """1 over each row's own tokens, 0 over the padding `padded` adds on `side`."""
    return padded([[1] * len(r) for r in rows], 0, side)


def context_of(model: Any) -> int | None:
    """How many tokens `model` (plain or PEFT-wrapped) can attend to, from its config; None when it says nothing."""
    return context_length(model)


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
