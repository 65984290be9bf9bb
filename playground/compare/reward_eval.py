"""Held-out reward of a GRPO adapter: answers to prompts the run never trained on (a recipe's test split or a
file), scored by the rules and weights the adapter was trained with (its playground.json settings, through
playground.data.reward_rules). Base model, the adapter the run started from (if any) and the tuned adapter.

Two readings of "mean reward", both reported, because they can differ a lot:
* **greedy**: one answer a prompt, the most likely token each step (what Compare and the Decode tab show);
* **sampled**: `samples` answers a prompt at the run's temperature with no top-k / top-p (how GRPO samples while
  training), averaged: the policy's expected reward, the quantity GRPO maximises. Seeded, and the same seed for
  every model, so the comparison is paired. Sampling from a sharper policy scores higher even where greedy answers
  do not change, which is much of what GRPO does to a model.

With the Pig Latin rule among the rewards, the greedy answers' *shape* is reported too (`PigLatinShape`): the rule
compares words position by position, so a gain can be the answers getting the sentence's word count rather than
better-translated words; the aligned reading tells the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from playground.adapters.live import AdapterManager
from playground.compare.evaluation import HeldOutRequest, Progress, batch_generate, encode_all, load_prompts
from playground.data.messages import text_of
from playground.data.reward_rules import Score, pig_latin_shape, rules_from_settings
from playground.decode.checks import check_float, check_int
from playground.decode.settings import SamplingSettings
from playground.model.turns import Urgency

ANSWER_COLUMNS = ("prompt", "base", "start", "tuned")  # the answers table: "—" under a model that was not run


@dataclass(frozen=True)
class RewardEvalRequest(HeldOutRequest):
    """dataset: a recipe id (its test split) or a file of held-out prompts; adapter: a GRPO adapter (None = the
    active one). samples: sampled answers a prompt (0 = greedy only) at `temperature` (None = the run's)."""

    samples: int = 0
    temperature: float | None = None
    seed: int = 0
    EMPTY = "Choose a recipe or a file of held-out prompts to evaluate on."

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("samples", self.samples, 0, 64)
        if self.temperature is not None:
            check_float("temperature", self.temperature, 0.0, 2.0, low_open=True, hint=" to sample answers")


@dataclass(frozen=True)
class PigLatinShape:
    """What greedy answers' Pig Latin reward is made of (reward_rules.pig_latin_shape), mean over prompts."""

    word_count_share: float  # answers with the sentence's number of words
    aligned: float  # words matched in order: a dropped or invented word costs only itself

    HEADERS = ("right word count", "aligned")  # shown right after the pig_latin column they explain

    @classmethod
    def of(cls, prompts: list[str], answers: list[str]) -> PigLatinShape:
        shapes = [pig_latin_shape(p, a) for p, a in zip(prompts, answers)]
        return cls(sum(same for same, _ in shapes) / len(shapes), sum(aligned for _, aligned in shapes) / len(shapes))


@dataclass
class RewardScores:
    label: str
    adapter: str | None
    reward: float  # weighted total of greedy answers, mean over prompts
    per_rule: dict[str, float]  # unweighted mean of each rule
    answers: list[str] = field(default_factory=list)  # greedy, one a prompt
    sampled_reward: float | None = None  # weighted total of sampled answers, mean over prompts x samples
    sampled_per_rule: dict[str, float] | None = None
    sampled_answers: list[list[str]] = field(default_factory=list)  # `samples` a prompt
    shape: PigLatinShape | None = None  # of the greedy answers, when the Pig Latin rule is among the rewards


@dataclass
class RewardEvalResult:
    dataset: str
    rows: int
    rules: str  # "1 × pig_latin + 0.5 × length"
    models: list[RewardScores]
    prompts: list[str]
    samples: int = 0  # sampled answers a prompt (0 = greedy only)
    temperature: float | None = None  # of the sampled answers

    def by_label(self, label: str) -> RewardScores | None:
        return next((m for m in self.models if m.label == label), None)

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """One row a model: greedy reward, sampled reward (when asked for), each rule's greedy mean and the Pig
        Latin shape (when that rule is on)."""
        rules = list(self.models[0].per_rule)
        sampled = f"sampled reward ↑ ({self.samples} a prompt, T {self.temperature:g})" if self.samples else None
        shaped = self.models[0].shape is not None

        def rule_cells(m: RewardScores) -> list[tuple[str, float]]:
            cells = []
            for r in rules:
                cells.append((r, m.per_rule[r]))
                if shaped and r == "pig_latin":  # the shape right after the rule it explains
                    cells += zip(PigLatinShape.HEADERS, (m.shape.word_count_share, m.shape.aligned))
            return cells

        headers = ["model", "adapter", "greedy reward ↑", *([sampled] if sampled else []),
                   *(h for h, _ in rule_cells(self.models[0]))]
        rows = [[m.label, m.adapter or "—", round(m.reward, 4), *([round(m.sampled_reward, 4)] if sampled else []),
                 *(round(v, 4) for _, v in rule_cells(m))] for m in self.models]
        return headers, rows

    def answer_rows(self, limit: int = 20) -> list[list[str]]:
        """The first prompts with each model's greedy answer (ANSWER_COLUMNS); "—" under start when the run
        started from no adapter."""
        by = {m.label: m.answers for m in self.models}
        return [[p, *(by[c][i] if c in by else "—" for c in ANSWER_COLUMNS[1:])]
                for i, p in enumerate(self.prompts[:limit])]

    def as_api(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "rows": self.rows, "rules": self.rules, "samples": self.samples,
                "temperature": self.temperature,
                "models": [{"label": m.label, "adapter": m.adapter, "reward": m.reward, "per_rule": m.per_rule,
                            "sampled_reward": m.sampled_reward, "sampled_per_rule": m.sampled_per_rule,
                            "pig_latin_shape": m.shape and {"word_count_share": m.shape.word_count_share,
                                                            "aligned": m.shape.aligned}}
                           for m in self.models]}


def _score(rules: list[tuple[str, float, Score]], prompts: list[str], answers: list[str]) -> tuple[float, dict]:
    """(weighted total, per-rule means) of answers to prompts, paired one to one."""
    per_rule = {n: sum(score(p, a) for p, a in zip(prompts, answers)) / len(answers) for n, _, score in rules}
    return sum(weight * per_rule[n] for n, weight, _ in rules), per_rule


def evaluate_rewards(adapters: AdapterManager, request: RewardEvalRequest, progress: Progress | None = None,
                     settings: dict[str, Any] | None = None) -> RewardEvalResult:
    """Score greedy answers (and, with `samples` > 0, that many sampled answers a prompt) of base, start adapter
    and the request's adapter with the adapter's reward rules (or `settings`). Raises ValueError / AdapterError
    with a sentence."""
    say = progress or (lambda _f, _m: None)
    info = request.adapter_info(adapters)
    adapter = info.name
    settings = settings or info.settings
    rules = rules_from_settings(settings)
    if not rules:
        raise ValueError(f"Adapter {adapter} records no GRPO rewards to score with (it was not trained with GRPO).")
    samples, seed = request.samples, request.seed
    shaped = any(n == "pig_latin" for n, _, _ in rules)
    # Answers as long as the run let them be (it never rewarded longer ones), at most the request's limit.
    max_new_tokens = min(request.max_new_tokens, int(settings.get("max_completion_length") or request.max_new_tokens))
    temperature = float(request.temperature or settings.get("temperature") or 1.0)
    # No top-k / top-p / min-p: GRPO samples from the whole distribution (TRL's defaults), so this is its policy.
    sampling = SamplingSettings(temperature=temperature, top_k=0)
    start = str(settings.get("start_adapter") or "").strip()
    models = [("base", None)] + ([("start", start)] if start and start in adapters.library.names() else []) + \
        [("tuned", adapter)]
    with adapters.store.reading(Urgency.BATCH) as lm:
        tokenizer, device = lm.tokenizer, lm.device
    name, examples = load_prompts(request.dataset.strip(), bool(getattr(tokenizer, "chat_template", None)),
                                  request.max_rows)
    prompts = [prompt for prompt, _ in encode_all(tokenizer, examples)]
    texts = [text_of(e.prompt) for e in examples]
    batches = [prompts[i:i + request.batch_size] for i in range(0, len(prompts), request.batch_size)]
    out, done, total = [], 0, len(models) * len(batches) * (2 if samples else 1)
    for label, which in models:
        answers: list[str] = []
        for batch in batches:
            with adapters.using(which, Urgency.BATCH) as lm:
                answers += batch_generate(lm.model, tokenizer, device, batch, max_new_tokens)
            done += 1
            say(done / total, f"{label}: greedy answers, batch {done}")
        scores = RewardScores(label, which, *_score(rules, texts, answers), answers,
                              shape=PigLatinShape.of(texts, answers) if shaped else None)
        if samples:
            flat: list[str] = []
            # A private RNG state: the same draws for every model (a paired comparison), the process's RNG untouched.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed)
                for batch in batches:
                    with adapters.using(which, Urgency.BATCH) as lm:
                        flat += batch_generate(lm.model, tokenizer, device, batch, max_new_tokens, sampling, samples)
                    done += 1
                    say(done / total, f"{label}: {samples} sampled answers a prompt, batch {done}")
            scores.sampled_reward, scores.sampled_per_rule = _score(rules, [t for t in texts for _ in range(samples)],
                                                                    flat)
            scores.sampled_answers = [flat[i:i + samples] for i in range(0, len(flat), samples)]
        out.append(scores)
    return RewardEvalResult(dataset=name, rows=len(examples), models=out, prompts=texts,
                            rules=" + ".join(f"{w:g} × {n}" for n, w, _ in rules), samples=samples,
                            temperature=temperature if samples else None)
