"""The waterfall: the next-token distribution after every stage of the pipeline, one row per active stage.

Gradio-free. Built from a Distribution's trace (the scores each transformers processor returned, in
generate()'s order), so a row's removed tokens are exactly those its processor set to -inf. Each row says
its rule with the current value, how many tokens survive it and how much probability they hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from playground.decode.sampling import Distribution, entropy_nats
from playground.decode.settings import SamplingSettings
from playground.decode.tokens import token_label
from playground.decode.words import sequences_label

MAX_TOP = 50  # tokens per row


@dataclass(frozen=True)
class WaterfallToken:
    token_id: int
    token: str
    prob_in: float    # in the distribution the stage received
    prob: float       # in the distribution it passes on (0 when it removed the token)
    removed: bool     # this stage set it to -inf

    def as_api(self) -> dict[str, Any]:
        return {"id": self.token_id, "token": self.token, "prob_in": self.prob_in, "prob": self.prob,
                "removed": self.removed}


@dataclass(frozen=True)
class StageRow:
    """One row of the waterfall."""

    name: str               # "raw", "bias", "penalty", …, "eta", "greedy"
    description: str        # the stage's rule with its current value
    kept_count: int         # tokens still possible after this stage
    mass: float             # share of the stage's input probability those tokens held
    raw_mass: float         # share of the model's own (raw) probability they hold
    removed_count: int      # tokens this stage removed
    top: list[WaterfallToken]  # its top tokens: ranked by its input for a filter, by its output otherwise

    @property
    def removed_ids(self) -> list[int]:
        """The removed tokens among `top`, best first."""
        return [t.token_id for t in self.top if t.removed]

    def as_api(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "kept_count": self.kept_count,
                "mass": self.mass, "raw_mass": self.raw_mass, "removed_count": self.removed_count,
                "removed_ids": self.removed_ids, "top": [t.as_api() for t in self.top]}


# The stages whose line is only their settings in a sentence (`{s.<field>}` is filled by str.format); the ones that
# need the tokenizer, the vocabulary or the scores (raw, bias, banned, temperature, eta) are written out below.
STAGE_TEMPLATES = {
    "penalty": "repetition_penalty {s.repetition_penalty:g}: the logit of every token already in the text is "
               "divided by {s.repetition_penalty:g} (multiplied when negative)",
    "no-repeat": "no_repeat_ngram_size {s.no_repeat_ngram_size}: bans a token that would repeat a "
                 "{s.no_repeat_ngram_size}-gram already in the text",
    "top-h": "top_h {s.top_h:g}: keeps the top tokens while their entropy sum ≤ {s.top_h:g} × the top-100 entropy",
    "top-k": "top_k {s.top_k}: keeps the {s.top_k} most probable tokens",
    "top-p": "top_p {s.top_p:g}: keeps the most probable tokens until their probability reaches {s.top_p:g}",
    "min-p": "min_p {s.min_p:g}: removes tokens below {s.min_p:g} × the top token's probability",
    "typical": "typical_p {s.typical_p:g}: keeps the tokens whose surprise is closest to the entropy, "
               "until they hold {s.typical_p:g}",
    "epsilon": "epsilon_cutoff {s.epsilon_cutoff:g}: removes tokens with probability below {s.epsilon_cutoff:g}",
    "greedy": "temperature 0: generate() takes the argmax, one token at 100 %",
}


def describe(name: str, s: SamplingSettings, tokenizer: Any, scores_in: torch.Tensor | None = None,
             vocab: int = 0) -> str:
    """One line: what the stage does, with its current value."""
    if name in STAGE_TEMPLATES:
        return STAGE_TEMPLATES[name].format(s=s)
    if name == "raw":
        return f"the model's own softmax over its {vocab:,} tokens"
    if name == "bias":
        shown = ", ".join(f"{sequences_label(tokenizer, [seq])} {b:+g}" for seq, b in list(s.bias_dict.items())[:4])
        more = f", … (+{len(s.bias_dict) - 4})" if len(s.bias_dict) > 4 else ""
        return f"sequence_bias adds to a listed word's last-token logit (once the rest is in the text): {shown}{more}"
    if name == "banned":
        return (f"bad_words_ids: a listed word's last token → −∞ once the rest is in the text: "
                f"{sequences_label(tokenizer, s.bad_words_ids)}")
    if name == "temperature":
        return f"temperature {s.temperature:g}: every logit ÷ {s.temperature:g} " \
               f"({'sharper' if s.temperature < 1 else 'flatter'})"
    if name == "eta":
        eps = s.eta_cutoff
        h = entropy_nats(scores_in) if scores_in is not None else float("nan")
        eta = min(eps, math.sqrt(eps) * math.exp(-h)) if not math.isnan(h) else float("nan")
        return f"eta_cutoff {eps:g}: removes tokens below η = min(ε, √ε·e^−H) = {eta:.3g} (H = {h:.2f} nats)"
    return name


def _top(probs_in: torch.Tensor, probs_out: torch.Tensor, removed: torch.Tensor, key: torch.Tensor, n: int,
         labels: dict[int, str], tokenizer: Any) -> list[WaterfallToken]:
    top = torch.topk(key, min(n, key.numel()), sorted=True)
    ids = top.indices[top.values > 0].tolist()  # tokens an earlier stage removed are not drawn again
    p_in, p_out, gone = probs_in[ids].tolist(), probs_out[ids].tolist(), removed[ids].tolist()
    for tid in ids:  # the rows share most tokens: label each once
        if tid not in labels:
            labels[tid] = token_label(tokenizer, tid)
    return [WaterfallToken(tid, labels[tid], a, b, bool(g)) for tid, a, b, g in zip(ids, p_in, p_out, gone)]


def waterfall_rows(dist: Distribution, tokenizer: Any, n: int = 20) -> list[StageRow]:
    """The raw row, then one row per stage generate() ran (and the argmax when greedy), in order."""
    n = max(1, min(int(n), MAX_TOP))
    s, raw = dist.settings, dist.raw_probs
    logits = dist.logits if dist.logits is not None else raw.log()
    alive = ~torch.isneginf(logits)
    no_removed = torch.zeros_like(alive)
    labels: dict[int, str] = {}
    rows = [StageRow("raw", describe("raw", s, tokenizer, vocab=raw.numel()), int(alive.sum()), 1.0,
                     float(raw[alive].sum()), 0, _top(raw, raw, no_removed, raw, n, labels, tokenizer))]
    probs_in, scores_in = raw, logits
    for t in dist.trace:
        probs = t.scores.softmax(-1)
        removed = alive & ~t.alive if t.stage.filters else no_removed
        key = probs_in if t.stage.filters else probs
        kept = t.alive.to(raw.dtype)  # dot products: cheaper than boolean indexing on every slider move
        rows.append(StageRow(t.stage.name, describe(t.stage.name, s, tokenizer, scores_in), int(kept.sum()),
                             float(torch.dot(probs_in, kept)), float(torch.dot(raw, kept)), int(removed.sum()),
                             _top(probs_in, probs, removed, key, n, labels, tokenizer)))
        probs_in, scores_in, alive = probs, t.scores, t.alive
    if s.greedy:
        final = dist.final_probs
        kept = final > 0
        removed = alive & ~kept
        rows.append(StageRow("greedy", describe("greedy", s, tokenizer), 1, float(probs_in[kept].sum()),
                             float(raw[kept].sum()), int(removed.sum()),
                             _top(probs_in, final, removed, probs_in, n, labels, tokenizer)))
    return rows
