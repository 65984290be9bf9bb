"""“What changed”: where the tuned answer leaves the base answer, and how much more (or less) likely the
tuned model made each of its tokens than the base model would have.

The tuned log-probabilities come from the tuned generate() call itself (its raw logits); the base ones
from ONE extra forward pass of the base (adapter disabled) over the prompt + tuned answer.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import torch

from playground.adapters.live import base_context
from playground.decode.sampling import token_logprobs
from playground.decode.tokens import incremental_texts, token_label
from playground.model.anatomy import forward_accepts
from playground.model.store import LoadedModel

DELTA_RANGE = 4.0  # |Δ log p| at which the colour is at full strength


@dataclass
class TokenDelta:
    token_id: int
    text: str  # what the token adds to the answer text
    label: str  # readable form (visible whitespace)
    logp_tuned: float
    logp_base: float

    @property
    def delta(self) -> float:
        return self.logp_tuned - self.logp_base

    def as_api(self) -> dict[str, Any]:
        return {"token": self.text, "token_id": self.token_id, "logp_tuned": round(self.logp_tuned, 5),
                "logp_base": round(self.logp_base, 5), "delta": round(self.delta, 5)}


@dataclass
class WhatChanged:
    tokens: list[TokenDelta]  # one per token of the tuned answer
    divergence_index: int | None  # first token index where the two answers differ; None = identical
    base_length: int
    base_token_at_divergence: str | None = None

    def as_api(self) -> list[dict[str, Any]]:
        return [t.as_api() for t in self.tokens]

    @property
    def mean_delta(self) -> float:
        return sum(t.delta for t in self.tokens) / len(self.tokens) if self.tokens else 0.0


def first_divergence(tuned: list[int], base: list[int]) -> int | None:
    """Index of the first differing token; the shorter length if one is a prefix; None if equal."""
    for i, (a, b) in enumerate(zip(tuned, base)):
        if a != b:
            return i
    return None if len(tuned) == len(base) else min(len(tuned), len(base))


@torch.no_grad()
def what_changed(lm: LoadedModel, prompt_ids: list[int], tuned_ids: list[int], tuned_logits: torch.Tensor | None,
                 base_ids: list[int]) -> WhatChanged:
    """Per-token log p_tuned − log p_base over the tuned answer. Caller holds the model lock."""
    div = first_divergence(tuned_ids, base_ids)
    base_tok = token_label(lm.tokenizer, base_ids[div]) if div is not None and div < len(base_ids) else None
    n = len(tuned_ids)
    if n == 0 or tuned_logits is None:
        return WhatChanged([], div, len(base_ids), base_tok)
    lp_tuned = token_logprobs(tuned_logits[:n], tuned_ids).cpu()
    full = torch.tensor([prompt_ids + tuned_ids], dtype=torch.long, device=lm.device)
    with base_context(lm), torch.inference_mode():
        if forward_accepts(lm.model, "logits_to_keep"):  # only the answer positions need the output layer
            logits = lm.model(input_ids=full, logits_to_keep=n + 1).logits[0, :n]
        else:
            logits = lm.model(input_ids=full).logits[0, len(prompt_ids) - 1:len(prompt_ids) - 1 + n]
    lp_base = token_logprobs(logits, tuned_ids).cpu()
    texts = incremental_texts(lm.tokenizer, prompt_ids, tuned_ids)
    tokens = [TokenDelta(tid, texts[i], token_label(lm.tokenizer, tid), float(lp_tuned[i]), float(lp_base[i]))
              for i, tid in enumerate(tuned_ids)]
    return WhatChanged(tokens, div, len(base_ids), base_tok)


def delta_color(delta: float) -> str:
    """Blue when the tuned model likes the token more than the base, orange when less (colour-blind safe)."""
    strength = min(1.0, abs(delta) / DELTA_RANGE) * 0.8
    rgb = "37, 99, 235" if delta > 0 else "234, 88, 12"
    return f"rgba({rgb}, {strength:.3f})"


LEGEND_HTML = (
    '<div class="pg-diff-legend" style="display:flex; gap:6px; align-items:center; font-size:12px; '
    'margin-top:6px; flex-wrap:wrap;">'
    "<span>Δ = log p<sub>tuned</sub> − log p<sub>base</sub>:</span>"
    + "".join(f'<span style="background:{delta_color(d)}; padding:1px 6px; border-radius:3px;">{d:+d}</span>'
              if d else '<span style="padding:1px 6px;">0</span>' for d in (-4, -2, -1, 0, 1, 2, 4))
    + "<span>(orange: the base model found the token likelier · blue: the adapter made it likelier)</span>"
    '<span style="outline:2px solid #dc2626; padding:0 4px; border-radius:3px;">▶ first token where the '
    "answers diverge</span><span>· hover a token for both probabilities</span></div>")


def placeholder_html(adapter: str | None) -> str:
    """What the panel says before a turn (or after a turn without an adapter): follows the active adapter."""
    if adapter:
        text = (f"Send a message: the answer of adapter <code>{html.escape(adapter)}</code> appears here token "
                "by token, coloured by how much likelier the adapter made each token than the base model.")
    else:
        text = "No adapter is active: nothing to compare against. Activate an adapter in the Adapters tab."
    return f'<div class="pg-whatchanged pg-empty" style="color:#6b7280;">{text}</div>'


def what_changed_html(changed: WhatChanged | None, adapter: str | None) -> str:
    """The tuned answer, each token coloured by Δ log p, the divergence marked, with a legend."""
    if changed is None:
        return placeholder_html(adapter)
    if changed.divergence_index is None:
        summary = "The two answers are identical."
    elif changed.divergence_index < len(changed.tokens):
        other = (f" (the base said <code>{html.escape(changed.base_token_at_divergence)}</code>)"
                 if changed.base_token_at_divergence else " (the base answer ended there)")
        summary = f"The answers diverge at token {changed.divergence_index + 1}{other}."
    else:
        summary = (f"The tuned answer is a prefix of the base answer; the base went on for "
                   f"{changed.base_length - len(changed.tokens)} more token(s).")
    summary += f" Mean Δ log p over the tuned answer: {changed.mean_delta:+.2f}."
    parts = ['<div class="pg-whatchanged">',
             f'<div class="pg-diff-summary" style="font-size:13px; margin-bottom:4px;">Tuned answer '
             f"(<code>{html.escape(adapter or '')}</code>) coloured by what changed. {summary}</div>",
             '<div class="pg-diff-text" style="font-family: ui-monospace, monospace; white-space: pre-wrap; '
             'line-height: 1.9; font-size: 14px;">']
    for i, t in enumerate(changed.tokens):
        hover = (f"{t.label}: p(tuned) = {math.exp(t.logp_tuned):.3g} · p(base) = {math.exp(t.logp_base):.3g}"
                 f" · Δ log p = {t.delta:+.2f}")
        mark = ""
        style = f"background:{delta_color(t.delta)}; border-radius:3px; padding:1px 0;"
        if i == changed.divergence_index:
            mark = '<span class="pg-diverge-mark" style="color:#dc2626; font-weight:bold;">▶</span>'
            style += " outline:2px solid #dc2626;"
        shown = html.escape(t.text).replace("\n", "↵\n") if t.text else "&#8203;"
        cls = "pg-tok pg-diverge" if i == changed.divergence_index else "pg-tok"
        parts.append(f'{mark}<span class="{cls}" data-delta="{t.delta:.4f}" title="{html.escape(hover)}" '
                     f'style="{style}">{shown}</span>')
    if changed.divergence_index is not None and changed.divergence_index >= len(changed.tokens):
        parts.append('<span class="pg-diverge-mark pg-diverge" style="color:#dc2626; font-weight:bold;" '
                     'title="the base answer continues here">▶</span>')
    parts.append("</div>" + LEGEND_HTML + "</div>")
    return "".join(parts)
