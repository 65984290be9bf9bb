"""How the next token is chosen: raw logits through transformers' own processors, stage by stage.

Gradio-free. The stages and their order are decode/processors.py (generate()'s `_get_logits_processor`,
transformers 5.23); the knobs are decode/settings.py. `analyze` runs the stages one after another exactly like
LogitsProcessorList.__call__ and keeps every stage's scores, so the probabilities shown, stage by stage, are
what `generate()` samples from (tests/test_decoding.py and test_decoding_sweep.py prove it against `output_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from transformers import TemperatureLogitsWarper

from playground.decode.processors import (  # noqa: F401 (re-exported: the pipeline's public names)
    BY_GREEDY,
    BY_MIN_P,
    BY_TOP_K,
    BY_TOP_P,
    FILTER_CODE,
    KEPT,
    REMOVED_BY,
    STAGE_LABEL,
    TOP_P_OR_LATER,
    Stage,
    build_processors,
    cumulative_basis,
    pipeline_stages,
)
from playground.decode.settings import NEUTRAL_GENERATE_KWARGS, SamplingSettings, generate_kwargs  # noqa: F401
from playground.decode.tokens import token_label
from playground.model.anatomy import forward_accepts

RANKED = 1024  # tokens ranked for tables and charts (the rest only count towards totals)


@dataclass(frozen=True)
class StageTrace:
    """One stage as it ran: the stage and the scores it returned (1-D over the vocabulary)."""

    stage: Stage
    scores: torch.Tensor
    alive: torch.Tensor  # bool: not -inf after this stage


@dataclass
class Distribution:
    """One next-token distribution at every stage of the pipeline (1-D tensors over the vocabulary)."""

    settings: SamplingSettings
    raw_probs: torch.Tensor     # softmax of the model's logits
    scaled_probs: torch.Tensor  # after the reshaping stages only (bias, penalty, temperature; greedy: no temperature)
    final_probs: torch.Tensor   # after every stage, renormalised: what generate() samples from
    removed_by: torch.Tensor    # int8 code per token: KEPT or the stage that removed it (REMOVED_BY)
    top_p_probs: torch.Tensor   # what top-p cuts on: after the stages before it (renormalised)
    logits: torch.Tensor | None = None                        # the model's raw logits
    trace: list[StageTrace] = field(default_factory=list)    # every stage's scores, in order

    @cached_property
    def order(self) -> torch.Tensor:
        """The best RANKED token ids by descending scaled probability (rank order). topk, not a full sort
        of the vocabulary: a slider move must stay cheap."""
        k = min(RANKED, self.scaled_probs.numel())
        return torch.topk(self.scaled_probs, k, sorted=True).indices

    @property
    def kept(self) -> torch.Tensor:
        return self.removed_by == KEPT

    @property
    def entropy_bits(self) -> float:
        """Of the final distribution (after every stage): what generate() samples from."""
        return entropy_bits(self.final_probs)

    @property
    def effective_choices(self) -> float:
        """2^entropy: how many equally likely tokens would be as uncertain as the final distribution."""
        return float(2 ** self.entropy_bits)

    @property
    def mass_kept(self) -> float:
        """Share of the (penalised, tempered) probability that survives the filters."""
        return float(self.scaled_probs[self.kept].sum())

    @property
    def raw_mass_kept(self) -> float:
        """Share of the model's own (raw) probability that survives: the waterfall's "of the raw probability"."""
        return float(self.raw_probs[self.kept].sum())

    @property
    def kept_count(self) -> int:
        return int(self.kept.sum())

    def cumulative(self) -> torch.Tensor:
        """Running sum, in rank order, of the distribution top-p cuts on (after penalty, temperature and
        top-k: tokens top-k removed add nothing), indexed by rank. Top-p keeps a token while the sum before
        it is below p."""
        return self.top_p_probs[self.order].cumsum(0)


def entropy_nats(logits: torch.Tensor) -> float:
    """Shannon entropy of softmax(logits) in nats, as transformers' EtaLogitsWarper computes it (torch's
    Categorical; −∞ logits count as zero probability); never negative (a one-token distribution is 0.0)."""
    h = float(torch.distributions.Categorical(logits=logits.float()).entropy())
    return h if h > 0 else 0.0


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor | list[int]) -> torch.Tensor:
    """log P(ids[i]) under softmax(logits[i]) for each row, by torch's Categorical (as entropy_nats). No argument
    checks: a NaN logit (half precision on a GPU) gives a NaN the view shows, not an error after the answer."""
    index = torch.as_tensor(ids, dtype=torch.long, device=logits.device)
    return torch.distributions.Categorical(logits=logits.float(), validate_args=False).log_prob(index)


def entropy_bits(probs: torch.Tensor) -> float:
    """The same entropy, of a probability vector, in bits."""
    return entropy_nats(probs.float().log()) / math.log(2)


def analyze(logits: torch.Tensor, input_ids: torch.Tensor | list[int], settings: SamplingSettings) -> Distribution:
    """Run raw next-token logits (1-D) through the pipeline, keeping every stage's scores and which stage
    removed each token (set it to -inf). The final scores are those of build_processors(settings)(ids, logits).
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1).to(logits.device)
    raw = logits.detach().float().reshape(1, -1)
    scores = raw.clone()
    removed = torch.zeros(scores.shape[-1], dtype=torch.int8, device=scores.device)
    trace: list[StageTrace] = []
    reshaped, filtered, top_p_in = scores, False, None
    alive = ~torch.isneginf(scores[0])
    for stage in pipeline_stages(settings):
        if stage.name in TOP_P_OR_LATER and top_p_in is None:  # the distribution top-p (would) cut on
            top_p_in = scores.softmax(-1)[0]
        scores = stage.processor(ids, scores)
        if stage.filters:
            still = ~torch.isneginf(scores[0])
            removed.masked_fill_(alive & ~still, FILTER_CODE[stage.name])
            alive, filtered = still, True
        else:  # a reshaping stage: the same processor on the unfiltered scores too (what "scaled" shows)
            reshaped = stage.processor(ids, reshaped) if filtered else scores
        trace.append(StageTrace(stage, scores[0], alive))
    scaled = reshaped.softmax(-1)[0]
    if top_p_in is None:  # no stage from top-p on: what top-p would see is what the stages before it left
        top_p_in = scores.softmax(-1)[0]
    if settings.greedy:  # generate() takes argmax of the processed scores: one token at 100 %
        top = int(torch.argmax(scores[0]))
        final = torch.zeros_like(scaled)
        final[top] = 1.0
        removed.masked_fill_(removed == KEPT, BY_GREEDY)
        removed[top] = KEPT
    else:
        final = scores.softmax(-1)[0]
    trace = [StageTrace(t.stage, t.scores.cpu(), t.alive.cpu()) for t in trace]
    return Distribution(settings, raw[0].softmax(-1).cpu(), scaled.cpu(), final.cpu(), removed.cpu(), top_p_in.cpu(),
                        raw[0].cpu(), trace)


@dataclass(frozen=True)
class TokenRow:
    """One line of the course's table, plus the stage probabilities for hover text."""

    rank: int
    token_id: int
    token: str
    raw_prob: float
    scaled_prob: float     # after repetition penalty and temperature
    top_p_prob: float      # in the distribution top-p cuts on (after top-k too)
    final_prob: float
    cumulative: float      # running sum of top_p_prob up to this rank
    kept: bool
    removed_by: str

    def as_api(self) -> dict[str, Any]:
        return {"token": self.token, "id": self.token_id, "prob": self.raw_prob,
                "after_temperature": self.scaled_prob, "top_p_input": self.top_p_prob,
                "final_prob": self.final_prob, "cumulative": self.cumulative, "rank": self.rank,
                "kept": self.kept, "removed_by": self.removed_by}


def top_rows(dist: Distribution, tokenizer: Any, n: int) -> list[TokenRow]:
    """The n best-ranked tokens with their probabilities at each stage (n at most RANKED)."""
    n = max(1, min(int(n), dist.order.numel()))
    cum = dist.cumulative()[:n].tolist()
    rows = []
    for rank, tid in enumerate(dist.order[:n].tolist()):
        code = int(dist.removed_by[tid])
        rows.append(TokenRow(rank=rank + 1, token_id=tid, token=token_label(tokenizer, tid),
                             raw_prob=float(dist.raw_probs[tid]), scaled_prob=float(dist.scaled_probs[tid]),
                             top_p_prob=float(dist.top_p_probs[tid]), final_prob=float(dist.final_probs[tid]), cumulative=float(cum[rank]),
                             kept=code == KEPT, removed_by=REMOVED_BY[code]))
    return rows


def rank_of(dist: Distribution, token_id: int) -> int:
    """1-based rank of a token: its place in `dist.order`, the order the table and the alternatives list show,
    so on a tie a label never says "rank 1" for the token listed second. Beyond the ranked tokens: one more
    than the tokens that are strictly more probable."""
    place = (dist.order == int(token_id)).nonzero()
    if place.numel():
        return int(place[0, 0]) + 1
    return int((dist.scaled_probs > dist.scaled_probs[int(token_id)]).sum()) + 1


def sample_token(dist: Distribution, seed: int, step: int) -> int:
    """Draw one token from the final probabilities, reproducibly for (seed, step)."""
    gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(step))
    return int(torch.multinomial(dist.final_probs, 1, generator=gen)[0])


def greedy_token(dist: Distribution) -> int:
    return int(torch.argmax(dist.final_probs))


def temperature_sweep(logits: torch.Tensor, temperatures: list[float]) -> list[tuple[float, float, float]]:
    """(T, top-1 probability, entropy in bits) of softmax(logits / T) via TemperatureLogitsWarper."""
    scores = logits.detach().float().reshape(1, -1)
    dummy = torch.zeros((1, 1), dtype=torch.long)
    out = []
    for t in temperatures:
        p = TemperatureLogitsWarper(float(t))(dummy, scores).softmax(-1)[0]
        out.append((float(t), float(p.max()), entropy_bits(p)))
    return out


# ---------------------------------------------------------------- model calls

def forward_kwargs(model: Any) -> dict[str, Any]:
    """Ask for the last position's logits only when the model supports it (as generate() does)."""
    return {"logits_to_keep": 1} if forward_accepts(model, "logits_to_keep") else {}


@torch.inference_mode()
def next_logits(model: Any, ids: list[int] | tuple[int, ...], device: Any, past: Any = None) -> tuple[torch.Tensor, Any]:
    """Logits for the token after `ids` (fed on top of `past` when given) and the updated KV cache."""
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    out = model(input_ids=input_ids, past_key_values=past, use_cache=True, **forward_kwargs(model))
    return out.logits[0, -1].float().cpu(), out.past_key_values
