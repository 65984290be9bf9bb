"""How the next token is chosen: raw logits -> repetition penalty -> temperature -> top-k -> top-p -> min-p.

Gradio-free. The pipeline is built from transformers' own LogitsProcessor/LogitsWarper classes in the
order `GenerationMixin._get_logits_processor` (transformers 5.23) applies them, so the probabilities shown
are exactly what `generate()` samples from (tests/test_decoding.py proves it against `output_scores`).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from playground.decode.checks import check_float, check_int  # noqa: F401 (re-exported for other packages)
from playground.decode.tokens import token_label

# Why a token was removed (index into this tuple is stored per vocab entry).
KEPT, BY_TOP_K, BY_TOP_P, BY_MIN_P, BY_GREEDY = range(5)
REMOVED_BY = ("", "top-k", "top-p", "min-p", "greedy")
FILTER_CODE = {"top-k": BY_TOP_K, "top-p": BY_TOP_P, "min-p": BY_MIN_P}
RANKED = 1024  # tokens ranked for tables and charts (the rest only count towards totals)

# generate() fills every unset option from the model's generation_config; these pin the ones that would add
# processors we do not show, so a model whose config sets e.g. no_repeat_ngram_size cannot change the result.
NEUTRAL_GENERATE_KWARGS: dict[str, Any] = dict(
    typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, top_h=None, no_repeat_ngram_size=0,
    encoder_repetition_penalty=1.0, bad_words_ids=None, min_length=0, min_new_tokens=None,
    forced_bos_token_id=None, forced_eos_token_id=None, suppress_tokens=None, begin_suppress_tokens=None,
    sequence_bias=None, guidance_scale=None, exponential_decay_length_penalty=None,
    remove_invalid_values=False, renormalize_logits=False, num_beams=1, num_return_sequences=1,
)


# (field, check): the one place the knobs' ranges live; error sentences name the field.
_KNOBS: tuple[tuple[str, Any], ...] = (
    ("temperature", lambda v: check_float("temperature", v, 0.0, 100.0, hint=" (0 = greedy)")),
    ("top_k", lambda v: check_int("top_k", v, 0, 10_000_000, hint=" (0 = off)")),
    ("top_p", lambda v: check_float("top_p", v, 0.0, 1.0, low_open=True, hint=" (1 = off)")),
    ("min_p", lambda v: check_float("min_p", v, 0.0, 1.0, hint=" (0 = off)")),
    ("repetition_penalty", lambda v: check_float("repetition_penalty", v, 0.0, 100.0, low_open=True,
                                                 hint=" (1 = off)")),
)


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs of one sampling step. temperature 0 = greedy; top_k 0, top_p 1, min_p 0 = filter off.

    Loose values (sliders send floats, the API may send strings) are checked and converted once, here:
    `SamplingSettings(top_k=40.0).top_k == 40`; a value out of range raises a ValueError naming the field."""

    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        for name, check in _KNOBS:
            object.__setattr__(self, name, check(getattr(self, name)))

    @classmethod
    def from_values(cls, temperature: Any, top_k: Any, top_p: Any, min_p: Any,
                    repetition_penalty: Any) -> "SamplingSettings":
        """From the five UI/API values in pipeline order (the Decode tab's knobs)."""
        return cls(temperature, top_k, top_p, min_p, repetition_penalty)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def pipeline_stages(settings: SamplingSettings) -> list[tuple[str, LogitsProcessor]]:
    """(stage name, transformers processor) in generate()'s order; stages that would be no-ops are left out,
    exactly as generate() leaves them out. Greedy keeps only the penalty (generate adds no warpers then)."""
    stages: list[tuple[str, LogitsProcessor]] = []
    if settings.repetition_penalty != 1.0:
        stages.append(("penalty", RepetitionPenaltyLogitsProcessor(float(settings.repetition_penalty))))
    if settings.greedy:
        return stages
    if settings.temperature != 1.0:
        stages.append(("temperature", TemperatureLogitsWarper(float(settings.temperature))))
    if settings.top_k:
        stages.append(("top-k", TopKLogitsWarper(int(settings.top_k))))
    if settings.top_p < 1.0:
        stages.append(("top-p", TopPLogitsWarper(float(settings.top_p))))
    if settings.min_p > 0:
        stages.append(("min-p", MinPLogitsWarper(float(settings.min_p))))
    return stages


STAGE_LABEL = {"penalty": "repetition penalty", "temperature": "temperature", "top-k": "top-k"}


def cumulative_basis(settings: SamplingSettings) -> str:
    """Which distribution the cumulative line sums: the one top-p cuts on, i.e. after the stages that run
    before top-p (e.g. "after temperature + top-k"), or "raw" when none of them is on."""
    before = [STAGE_LABEL[name] for name, _ in pipeline_stages(settings) if name in STAGE_LABEL]
    return "after " + " + ".join(before) if before else "raw"


def build_processors(settings: SamplingSettings) -> LogitsProcessorList:
    """The LogitsProcessorList generate() would build for these settings."""
    return LogitsProcessorList(proc for _, proc in pipeline_stages(settings))


def generate_kwargs(settings: SamplingSettings) -> dict[str, Any]:
    """Keyword arguments that make generate() use exactly these settings (and nothing from the model's
    generation_config that we do not show)."""
    common = {**NEUTRAL_GENERATE_KWARGS, "repetition_penalty": float(settings.repetition_penalty)}
    if settings.greedy:
        return {**common, "do_sample": False, "temperature": None, "top_k": None, "top_p": None, "min_p": None}
    return {**common, "do_sample": True, "temperature": float(settings.temperature), "top_k": int(settings.top_k),
            "top_p": float(settings.top_p), "min_p": float(settings.min_p) if settings.min_p > 0 else None}


@dataclass
class Distribution:
    """One next-token distribution at every stage of the pipeline (1-D tensors over the vocabulary)."""

    settings: SamplingSettings
    raw_probs: torch.Tensor     # softmax of the model's logits
    scaled_probs: torch.Tensor  # after repetition penalty and temperature (greedy: penalty only)
    final_probs: torch.Tensor   # after top-k/top-p/min-p, renormalised: what generate() samples from
    removed_by: torch.Tensor    # int8 code per token: KEPT or the stage that removed it
    top_p_probs: torch.Tensor   # what top-p cuts on: after penalty, temperature and top-k (renormalised)

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
        return _entropy_bits(self.final_probs)

    @property
    def effective_choices(self) -> float:
        """2^entropy: how many equally likely tokens would be as uncertain as this distribution."""
        return float(2 ** self.entropy_bits)

    @property
    def mass_kept(self) -> float:
        """Share of the (penalised, tempered) probability that survives the filters."""
        return float(self.scaled_probs[self.kept].sum())

    @property
    def kept_count(self) -> int:
        return int(self.kept.sum())

    def cumulative(self) -> torch.Tensor:
        """Running sum, in rank order, of the distribution top-p cuts on (after penalty, temperature and
        top-k: tokens top-k removed add nothing), indexed by rank. Top-p keeps a token while the sum before
        it is below p."""
        return self.top_p_probs[self.order].cumsum(0)


def _entropy_bits(probs: torch.Tensor) -> float:
    """Shannon entropy in bits, never negative (a one-token distribution is 0.0, not -0.0)."""
    p = probs[probs > 0]
    h = float(-(p * torch.log2(p)).sum()) if p.numel() else 0.0
    return h if h > 0 else 0.0


def analyze(logits: torch.Tensor, input_ids: torch.Tensor | list[int], settings: SamplingSettings) -> Distribution:
    """Run raw next-token logits (1-D) through the pipeline, recording which stage removed each token.

    Stages are applied one after another exactly like LogitsProcessorList.__call__ does; the final
    scores are therefore those of build_processors(settings)(input_ids, logits).
    """
    ids = torch.as_tensor(input_ids, dtype=torch.long).reshape(1, -1).to(logits.device)
    scores = logits.detach().float().reshape(1, -1).clone()
    raw_probs = scores.softmax(-1)[0]
    removed = torch.zeros(scores.shape[-1], dtype=torch.int8, device=scores.device)
    scaled, alive, top_p_in = None, None, None
    for name, proc in pipeline_stages(settings):
        if name in ("top-p", "min-p") and top_p_in is None:  # the distribution top-p (and min-p) sees
            top_p_in = scores.softmax(-1)[0]
        if name not in FILTER_CODE:  # penalty, temperature: reshape, remove nothing
            scores = proc(ids, scores)
            continue
        if scaled is None:  # the distribution the filters see
            scaled = scores.softmax(-1)[0]
            alive = scores[0] != -math.inf
        scores = proc(ids, scores)
        still = scores[0] != -math.inf
        removed.masked_fill_(alive & ~still, FILTER_CODE[name])
        alive = still
    if scaled is None:
        scaled = scores.softmax(-1)[0]
    if top_p_in is None:  # neither top-p nor min-p on: what top-p would see is what top-k left
        top_p_in = scores.softmax(-1)[0]
    if settings.greedy:  # generate() takes argmax of the processed scores: one token at 100 %
        final = torch.zeros_like(scaled)
        top = int(torch.argmax(scores[0]))
        final[top] = 1.0
        removed[:] = BY_GREEDY
        removed[top] = KEPT
    else:
        final = scores.softmax(-1)[0]
    return Distribution(settings, raw_probs.cpu(), scaled.cpu(), final.cpu(), removed.cpu(), top_p_in.cpu())


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
    """1-based rank of a token in the distribution (ties share the better rank)."""
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
        out.append((float(t), float(p.max()), _entropy_bits(p)))
    return out


# ---------------------------------------------------------------- model calls

def forward_kwargs(model: Any) -> dict[str, Any]:
    """Ask for the last position's logits only when the model supports it (as generate() does)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(base.forward).parameters else {}


@torch.inference_mode()
def next_logits(model: Any, ids: list[int] | tuple[int, ...], device: Any, past: Any = None) -> tuple[torch.Tensor, Any]:
    """Logits for the token after `ids` (fed on top of `past` when given) and the updated KV cache."""
    input_ids = torch.tensor([list(ids)], dtype=torch.long, device=device)
    out = model(input_ids=input_ids, past_key_values=past, use_cache=True, **forward_kwargs(model))
    return out.logits[0, -1].float().cpu(), out.past_key_values
