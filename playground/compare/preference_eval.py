"""Held-out evaluation of preference tuning (DPO): base vs tuned on pairs the adapter never saw.

* **Preference accuracy** (tuned): the share of held-out pairs where the tuned model's implicit DPO reward,
  log π_tuned(answer) − log π_ref(answer), is higher for the chosen answer than for the rejected one. The
  reference is what the run trained against: the adapter it started from, else the base model. (β scales both
  rewards alike, so it does not change the ranking.)
* **Prefers chosen** (base and tuned): the share of pairs where the model itself gives the chosen answer the
  higher log-probability; this is what the base model "prefers" before any tuning.
* **Win rate** (base and tuned, recipes with a rule): the share of greedy answers to the held-out prompts that
  follow the recipe's rule (playground.data.rules), e.g. "ends with 'Hope this helps!'".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from playground.adapters.live import AdapterManager
from playground.compare.evaluation import HeldOutRequest, Progress, batch_generate, recipe_method
from playground.compare.fit import attention_mask, context_of, fit_pair, padded
from playground.data.files import load_file
from playground.data.loading import RawData
from playground.data.messages import text_of
from playground.data.preference import format_preference, pair_ids
from playground.data.recipes import get_recipe, list_recipes
from playground.data.rules import rule_for
from playground.data.sources import DataSource
from playground.model.turns import Urgency



@dataclass(frozen=True)
class PreferenceEvalRequest(HeldOutRequest):
    """dataset: a preference recipe id (its test split) or the path of a file of held-out pairs."""

    max_rows: int = 50
    EMPTY = "Choose a preference recipe or a file of held-out pairs to evaluate on."

    def __post_init__(self) -> None:
        super().__post_init__()
        recipe = self.dataset.strip() if isinstance(self.dataset, str) else ""
        # Only DPO recipes hold pairs (the form lists only those); the API may name any recipe.
        if recipe in {r.id for r in list_recipes()} and recipe_method(get_recipe(recipe)) != "dpo":
            raise ValueError(f"{recipe} holds one answer per prompt, not preference pairs (chosen / rejected "
                             "answers): evaluate it with Compare → Held-out evaluation (API: /evaluate).")


@dataclass
class PreferenceEvalResult:
    dataset: str
    adapter: str
    reference: str | None  # None = the base model
    rows: int
    rule: str | None
    tuned_pref_acc: float
    base_prefers_chosen: float
    tuned_prefers_chosen: float
    base_win_rate: float | None = None
    tuned_win_rate: float | None = None
    prompts: list[str] = field(default_factory=list)
    base_answers: list[str] = field(default_factory=list)
    tuned_answers: list[str] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("dataset", "adapter", "reference", "rows", "rule", "tuned_pref_acc",
                                             "base_prefers_chosen", "tuned_prefers_chosen", "base_win_rate",
                                             "tuned_win_rate")}
        out["answers"] = [{"prompt": p, "base": b, "tuned": t}
                          for p, b, t in zip(self.prompts, self.base_answers, self.tuned_answers)]
        return out

    def table(self) -> tuple[list[str], list[list[str]]]:
        pct = lambda x: "—" if x is None else f"{100 * x:.1f} %"  # noqa: E731
        rows = [["base", "— (not tuned)", pct(self.base_prefers_chosen), pct(self.base_win_rate)],
                [self.adapter, pct(self.tuned_pref_acc), pct(self.tuned_prefers_chosen), pct(self.tuned_win_rate)]]
        return ["model", "preference accuracy (implicit reward) ↑", "prefers chosen (log-prob) ↑",
                "win rate (rule) ↑"], rows


def load_pairs(dataset: str, chat: bool, max_rows: int) -> tuple[str, Any]:
    """(name, formatted pairs) of a recipe's test split or a file of held-out pairs."""
    if dataset in {r.id for r in list_recipes()}:
        path, name = get_recipe(dataset).test, dataset
    else:
        path = Path(dataset)
        name = path.name
    source = DataSource(kind="file", path=str(path), max_rows=max_rows)
    pairs, _ = format_preference(RawData(load_file(path), name, ""), source, has_chat_template=chat)
    return name, pairs


@torch.no_grad()
def answer_logps(model: Any, device: torch.device, pad_id: int,
                 batch: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-probability of each answer given its prompt (a row too long for the context: cut, fit_pair)."""
    limit = context_of(model)
    batch = [fit_pair(p, a, limit) for p, a in batch]
    rows = [p + a for p, a in batch]
    ids, mask = padded(rows, pad_id), attention_mask(rows)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
    from trl.trainer.utils import selective_log_softmax  # lazy (trl is heavy): DPOTrainer's own log-probs

    logp = selective_log_softmax(logits[:, :-1], ids[:, 1:].to(device))
    return [float(logp[i, len(p) - 1:len(p) + len(a) - 1].sum()) for i, (p, a) in enumerate(batch)]


def _start_adapter(adapters: AdapterManager, name: str) -> str | None:
    """The adapter a run started from (its DPO reference), if it is still in the library."""
    start = str(adapters.library.get(name).settings.get("start_adapter") or "").strip()
    return start if start and start in adapters.library.names() else None


def evaluate_preferences(adapters: AdapterManager, request: PreferenceEvalRequest,
                         progress: Progress | None = None) -> PreferenceEvalResult:
    say = progress or (lambda _f, _m: None)
    adapter = request.adapter_info(adapters).name
    reference = _start_adapter(adapters, adapter)
    with adapters.store.reading(Urgency.BATCH) as lm:
        tokenizer, device = lm.tokenizer, lm.device
    chat = bool(getattr(tokenizer, "chat_template", None))
    say(0.0, "Loading the held-out pairs…")
    name, pairs = load_pairs(request.dataset.strip(), chat, request.max_rows)
    encoded = [((p, c), (p, r)) for p, c, r in pair_ids(pairs, tokenizer)]  # as DPOTrainer tokenizes them
    flat = [e for pair in encoded for e in pair]  # chosen, rejected, chosen, …
    batches = [flat[i:i + 2 * request.batch_size] for i in range(0, len(flat), 2 * request.batch_size)]
    rule = rule_for(name)
    prompts = [p for (p, _), _ in encoded]
    gen_batches = [prompts[i:i + request.batch_size] for i in range(0, len(prompts), request.batch_size)]
    models = [("base", None), ("tuned", adapter)] + ([("reference", reference)] if reference else [])
    steps, done = len(models) * len(batches) + (2 * len(gen_batches) if rule else 0), 0
    logps: dict[str, list[float]] = {}
    answers: dict[str, list[str]] = {}
    for label, which in models:
        logps[label] = []
        for batch in batches:
            with adapters.using(which, Urgency.BATCH) as lm:
                logps[label] += answer_logps(lm.model, lm.device, tokenizer.pad_token_id, batch)
            done += 1
            say(done / steps, f"{label}: scoring pairs {done}/{steps}")
        if rule and label != "reference":
            answers[label] = []
            for batch in gen_batches:
                with adapters.using(which, Urgency.BATCH) as lm:
                    answers[label] += batch_generate(lm.model, tokenizer, device, batch, request.max_new_tokens)
                done += 1
                say(done / steps, f"{label}: answering {done}/{steps}")
    ref = logps["reference" if reference else "base"]

    def share(values: list[bool]) -> float:
        return sum(values) / len(values) if values else 0.0

    def prefers(lp: list[float]) -> float:
        return share([lp[i] > lp[i + 1] for i in range(0, len(lp), 2)])

    tuned = logps["tuned"]
    margins = [(tuned[i] - ref[i]) - (tuned[i + 1] - ref[i + 1]) for i in range(0, len(tuned), 2)]
    say(1.0, "Done.")
    result = PreferenceEvalResult(
        dataset=name, adapter=adapter, reference=reference, rows=len(pairs), rule=rule.description if rule else None,
        tuned_pref_acc=share([m > 0 for m in margins]), base_prefers_chosen=prefers(logps["base"]),
        tuned_prefers_chosen=prefers(tuned), prompts=[text_of(r["prompt"]) for r in pairs])
    if rule:
        result.base_answers, result.tuned_answers = answers["base"], answers["tuned"]
        result.base_win_rate = share([rule.check(a) for a in answers["base"]])
        result.tuned_win_rate = share([rule.check(a) for a in answers["tuned"]])
    return result
