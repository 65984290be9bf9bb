"""Greedy vs beam search vs sampling on the same prompt, all through generate() (Gradio-free).

One strategy at a time (`strategy_runs` + `run_strategy`), so the Decode tab can show each row as soon as
it is ready instead of a silent ~15 s wait on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from playground.decode.beam import MAX_BEAMS, strip_after_eos
from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings, generate_kwargs, token_logprobs
from playground.decode.settings import describe_more, penalty_and_more
from playground.model.store import LoadedModel

MAX_COMPARE_TOKENS = 200


@dataclass
class StrategyResult:
    """One strategy's continuation of the same prompt."""

    name: str
    detail: str
    text: str
    token_ids: list[int]
    sum_logprob: float        # under the model itself (temperature 1), comparable across strategies

    @property
    def geometric_mean_prob(self) -> float:
        """exp(mean log p): the geometric mean of the tokens' probabilities (not their arithmetic mean)."""
        return float(torch.tensor(self.sum_logprob / max(1, len(self.token_ids))).exp())


@dataclass(frozen=True)
class StrategyRun:
    """One strategy to run: its name, a short description and the generate() options that make it."""

    name: str
    detail: str
    kwargs: dict[str, Any]


def strategy_runs(settings: SamplingSettings, num_beams: Any, seed: Any) -> list[StrategyRun]:
    """Greedy, beam search (num_beams, length penalty 1) and sampling with `settings` and `seed` (at
    temperature 0 the last row is greedy with `settings`' penalties, and says so)."""
    num_beams = check_int("num_beams", num_beams, 1, MAX_BEAMS)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    greedy = generate_kwargs(SamplingSettings(temperature=0.0))
    more = "".join(f", {part}" for part in describe_more(settings))
    if settings.greedy:  # generate() takes the argmax (do_sample False): the filters and the seed do nothing
        stages = penalty_and_more(settings)
        argmax = f"argmax every step after {', '.join(stages)}" if stages else "argmax every step"
        yours = StrategyRun("Greedy (temperature 0)", f"{argmax}; top-k, top-p, min-p and seed unused",
                            generate_kwargs(settings))
    else:
        yours = StrategyRun("Sampled", f"T={settings.temperature:g}, top-k={settings.top_k}, top-p={settings.top_p:g}, "
                                       f"min-p={settings.min_p:g}, repetition penalty={settings.repetition_penalty:g}"
                                       f"{more}, seed {seed}", generate_kwargs(settings))
    # The first two rows ignore the sliders (raw scores), which stay visible above: their detail says so.
    return [StrategyRun("Greedy", "argmax of the raw probabilities every step", greedy),
            StrategyRun("Beam search", f"{num_beams} beams, length penalty 1, raw log-probabilities (no "
                                       "temperature, filters or penalty)",
                        {**greedy, "num_beams": num_beams, "early_stopping": False, "length_penalty": 1.0}),
            yours]


@torch.inference_mode()
def run_strategy(lm: LoadedModel, prompt_ids: list[int], run: StrategyRun, max_new_tokens: Any,
                 seed: Any) -> StrategyResult:
    """One strategy's continuation by generate() (global RNG seeded with `seed`, as generate() samples)."""
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1, MAX_COMPARE_TOKENS)
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    torch.manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            max_new_tokens=max_new_tokens, pad_token_id=lm.tokenizer.pad_token_id, **run.kwargs)
    gen = strip_after_eos(lm, out[0, len(prompt_ids):].tolist())
    text = lm.tokenizer.decode(gen, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return StrategyResult(run.name, run.detail, text, gen, continuation_logprob(lm, prompt_ids, gen))


def compare_strategies(lm: LoadedModel, prompt_ids: list[int], settings: SamplingSettings, num_beams: int,
                       max_new_tokens: int, seed: int) -> list[StrategyResult]:
    """Greedy, beam search and sampling (fixed seed) on the same prompt, all through generate()."""
    runs = strategy_runs(settings, num_beams, seed)
    return [run_strategy(lm, prompt_ids, run, max_new_tokens, seed) for run in runs]


@torch.inference_mode()
def continuation_logprob(lm: LoadedModel, prompt_ids: list[int], generated: list[int]) -> float:
    """log P(generated | prompt) under the model, by one teacher-forced forward pass."""
    if not generated:
        return 0.0
    ids = torch.tensor([list(prompt_ids) + list(generated)], dtype=torch.long, device=lm.device)
    logits = lm.model(input_ids=ids, use_cache=False).logits[0, len(prompt_ids) - 1:-1].float()
    return float(token_logprobs(logits, generated).sum())
