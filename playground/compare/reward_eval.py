"""Held-out reward of a GRPO adapter: greedy answers to prompts the run never trained on (a recipe's test split or
a file), scored by the rules and weights the adapter was trained with (its playground.json settings, through
playground.data.reward_rules). Base model, the adapter the run started from (if any) and the tuned adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from playground.adapters.live import AdapterManager
from playground.compare.evaluation import batch_generate, encode, load_examples
from playground.data.reward_rules import rules_from_settings, text_of
from playground.decode.checks import check_int
from playground.model.turns import Urgency

Progress = Callable[[float, str], None]


@dataclass
class RewardScores:
    label: str
    adapter: str | None
    reward: float  # weighted total, mean over prompts
    per_rule: dict[str, float]  # unweighted mean of each rule
    answers: list[str] = field(default_factory=list)


@dataclass
class RewardEvalResult:
    dataset: str
    rows: int
    rules: str  # "1 × pig_latin + 0.5 × length"
    models: list[RewardScores]
    prompts: list[str]

    def by_label(self, label: str) -> RewardScores | None:
        return next((m for m in self.models if m.label == label), None)

    def as_api(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "rows": self.rows, "rules": self.rules,
                "models": [{"label": m.label, "adapter": m.adapter, "reward": m.reward, "per_rule": m.per_rule}
                           for m in self.models]}


def evaluate_rewards(adapters: AdapterManager, dataset: str, adapter: str, max_rows: int = 30,
                     batch_size: int = 8, max_new_tokens: int = 64, progress: Progress | None = None,
                     settings: dict[str, Any] | None = None) -> RewardEvalResult:
    """Score greedy answers of base, start adapter and `adapter` with the adapter's reward rules (or `settings`)."""
    say = progress or (lambda _f, _m: None)
    check_int("max_rows", max_rows, 1, 100_000)
    info = adapters.library.get(adapter)
    settings = settings or info.settings
    rules = rules_from_settings(settings)
    if not rules:
        raise ValueError(f"Adapter {adapter} records no GRPO rewards to score with (it was not trained with GRPO).")
    start = str(settings.get("start_adapter") or "").strip()
    models = [("base", None)] + ([("start", start)] if start and start in adapters.library.names() else []) + \
        [("tuned", adapter)]
    with adapters.store.reading(Urgency.BATCH) as lm:
        tokenizer, device = lm.tokenizer, lm.device
    name, examples, _ = load_examples(dataset, bool(getattr(tokenizer, "chat_template", None)), max_rows)
    prompts = [encode(tokenizer, e)[0] for e in examples]
    texts = [text_of(e.prompt) for e in examples]
    batches = [prompts[i:i + batch_size] for i in range(0, len(prompts), batch_size)]
    out, done = [], 0
    for label, which in models:
        answers: list[str] = []
        for batch in batches:
            with adapters.using(which, Urgency.BATCH) as lm:
                answers += batch_generate(lm.model, tokenizer, device, batch, max_new_tokens)
            done += 1
            say(done / (len(models) * len(batches)), f"{label}: answering {done}")
        per_rule = {n: sum(score(p, a) for p, a in zip(texts, answers)) / len(answers) for n, _, score in rules}
        total = sum(weight * per_rule[n] for n, weight, _ in rules)
        out.append(RewardScores(label, which, total, per_rule, answers))
    return RewardEvalResult(dataset=name, rows=len(examples), models=out, prompts=texts,
                            rules=" + ".join(f"{w:g} × {n}" for n, w, _ in rules))
