"""Held-out evaluation: base vs tuned on a recipe's test split or an uploaded file of held-out rows.

Loss (and perplexity) is measured on the answer tokens only, as training puts its loss there, for every
dataset. Both models also answer the first rows greedily, so you can read what changed. Only Pig Latin has an
automatic score of the answers (word accuracy and exact match, over every row); other recipes and uploads
show loss, perplexity and the answers. The model lock is taken per batch with `AdapterManager.using`, so
other tabs are not blocked for the whole run and every batch runs with the intended adapter even if someone
swaps adapters meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from playground.adapters.library import AdapterInfo
from playground.adapters.live import AdapterManager
from playground.compare.fit import attention_mask, context_of, fit_prompts, fit_row, padded
from playground.data.files import load_file, quiet_datasets
from playground.data.loading import RawData, format_rows
from playground.data.messages import text_of
from playground.data.pig_latin import exact_match, word_accuracy
from playground.data.prompts import format_prompts
from playground.data.preview import prompt_and_full_ids
from playground.data.recipes import get_recipe, list_recipes
from playground.data.sources import DataSource
from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings, generate_kwargs
from playground.model.turns import Urgency

Progress = Callable[[float, str], None]  # (fraction done, what is being done): the evaluations' progress bar
PIG_LATIN_PREFIX = "translate to pig latin"
NO_ADAPTER = "No adapter to evaluate: activate one in the Adapters tab or choose one here."
LOSS_METRICS = [("loss", "loss ↓"), ("perplexity", "perplexity ↓")]
PIG_LATIN_METRICS = [("word_accuracy", "word accuracy ↑"), ("exact_match", "exact match ↑")]
PERCENT = ("word_accuracy", "exact_match")  # metrics shown in % (0–100): the table and the chart


@dataclass(frozen=True)
class HeldOutRequest:
    """What every held-out evaluation takes: dataset = a recipe id (its test split) or the path of a file."""

    dataset: str
    adapter: str | None = None  # None = the server's active adapter (the UI passes its browser's own)
    max_rows: int = 60
    batch_size: int = 8
    max_new_tokens: int = 64
    EMPTY = "Choose a recipe or upload a file of held-out rows to evaluate on."  # (a class constant, not a field)

    def __post_init__(self) -> None:
        if not str(self.dataset or "").strip():
            raise ValueError(self.EMPTY)
        check_int("max_rows", self.max_rows, 1, 100_000)
        check_int("batch_size", self.batch_size, 1, 256)
        check_int("max_new_tokens", self.max_new_tokens, 1, 1024)

    def adapter_info(self, adapters: AdapterManager) -> AdapterInfo:
        """The adapter to evaluate (the request's, else the active one), or a ValueError / AdapterError with a
        sentence before any work."""
        adapter = (self.adapter or "").strip() or adapters.active()
        if not adapter:
            raise ValueError(NO_ADAPTER)
        return adapters.library.get(adapter)


@dataclass(frozen=True)
class EvalRequest(HeldOutRequest):
    answers: int = 8  # rows both models answer greedily for reading (Pig Latin answers every row: it scores them)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("answers", self.answers, 0, 100_000)


@dataclass
class Example:
    prompt: Any  # list of chat messages, or a plain string for models without a chat template
    reference: str


@dataclass
class Scores:
    """One model's metrics; `adapter` records which adapter produced them (None = the base)."""

    label: str
    adapter: str | None
    loss: float
    perplexity: float
    word_accuracy: float | None = None
    exact_match: float | None = None
    predictions: list[str] = field(default_factory=list)


@dataclass
class EvalResult:
    dataset: str
    model: str
    rows: int
    pig_latin: bool
    base: Scores
    tuned: Scores
    references: list[str]

    @property
    def metrics(self) -> list[tuple[str, str]]:
        """(Scores field, title) of the metrics that apply to this dataset."""
        return LOSS_METRICS + (PIG_LATIN_METRICS if self.pig_latin else [])

    def headers(self) -> list[str]:
        return ["model", "adapter", *(title for _, title in self.metrics), "rows"]

    def table(self) -> list[list]:
        """One row per model with only the metrics that apply (no empty columns)."""
        def f(key: str, x: float | None) -> str:
            return "—" if x is None else f"{100 * x:.1f} %" if key in PERCENT else f"{x:.4f}"
        return [[s.label, s.adapter or "— (base)", *(f(k, getattr(s, k)) for k, _ in self.metrics), self.rows]
                for s in (self.base, self.tuned)]

    def metric_note(self) -> str:
        """Which metrics apply, said in words next to the table."""
        note = ("Loss and perplexity of the reference answers' tokens (lower = the model finds the expected "
                "answer likelier)")
        if self.pig_latin:
            return (note + f"; word accuracy and exact match score the greedy answers of all {self.rows} rows "
                    "against the Pig Latin references (higher is better).")
        return (note + f". {self.dataset} has no automatic answer score (word accuracy applies to Pig Latin "
                "only): read the answers below.")

    def answers_label(self) -> str:
        n = len(self.samples())
        return f"First {n} answer{'s' if n != 1 else ''} on {self.dataset} (greedy): reference · base · {self.tuned.label}"

    def as_api(self) -> dict[str, Any]:
        def d(s: Scores) -> dict[str, Any]:
            return {"adapter": s.adapter, "loss": s.loss, "perplexity": s.perplexity,
                    "word_accuracy": s.word_accuracy, "exact_match": s.exact_match}
        return {"dataset": self.dataset, "model": self.model, "rows": self.rows, "base": d(self.base),
                "tuned": d(self.tuned), "metrics": [k for k, _ in self.metrics],
                "answers": [{"reference": r, "base": b, "tuned": t} for r, b, t in self.samples(len(self.references))]}

    def samples(self, n: int = 8) -> list[list[str]]:
        """First rows: reference, base answer, tuned answer."""
        return [[r, b, t] for r, b, t in zip(self.references[:n], self.base.predictions, self.tuned.predictions)]


def dataset_choices() -> list[tuple[str, str]]:
    """The recipes whose test split has prompt/answer rows: supervised ones (a DPO recipe's pairs are for the
    preference evaluation, and would only fail here)."""
    return [(f"{r.title} (test split)", r.id) for r in list_recipes() if recipe_method(r) == "sft"]


def recipe_method(recipe: Any) -> str:
    """The training method a recipe is made for (its defaults' `method`; none given = SFT)."""
    return str(recipe.defaults.get("method") or "sft")


def _held_out_file(dataset: str) -> tuple[Path, str]:
    """(path, name): a recipe's test split, or an uploaded file (all of it is held out)."""
    if dataset in {r.id for r in list_recipes()}:
        return get_recipe(dataset).test, dataset
    return Path(dataset), Path(dataset).name


def load_prompts(dataset: str, chat: bool, max_rows: int) -> tuple[str, list[Example]]:
    """(name, examples) for a reward evaluation: the prompts as GRPO reads them, so an answer column is optional
    (the rules score the models' answers; a reference is "" where the data has none)."""
    path, name = _held_out_file(dataset)
    source = DataSource(kind="file", path=str(path), max_rows=max_rows)
    with quiet_datasets():
        rows, _, _ = format_prompts(RawData(load_file(path), name, ""), source, has_chat_template=chat)
    return name, [Example(row["prompt"], row["completion"] or "") for row in rows]


def load_examples(dataset: str, chat: bool, max_rows: int) -> tuple[str, list[Example], bool]:
    """(name, examples, is Pig Latin) for a recipe's test split or an uploaded file (all of it is held out)."""
    path, name = _held_out_file(dataset)
    source = DataSource(kind="file", path=str(path), completion_only_loss=True, use_chat_template=True,
                        max_rows=max_rows)
    with quiet_datasets():
        table = load_file(path)
        if {"chosen", "rejected"} <= set(table.column_names):  # a DPO recipe or file: no single answer to score
            raise ValueError(f"{name} holds preference pairs (chosen / rejected answers), not one answer per prompt: "
                             "evaluate it with Compare → Preference evaluation (API: /evaluate_preference).")
        rows, fmt, _ = format_rows(RawData(table, name, ""), source, has_chat_template=chat)
    if fmt == "text":
        raise ValueError(f"{name} has plain text rows; evaluation needs a prompt and an answer per row "
                         "(messages, prompt/completion or instruction/output).")
    examples = [Example(r["prompt"], r["completion"][-1]["content"] if isinstance(r["completion"], list)  # chat
                        else str(r["completion"])) for r in rows]
    prompts = [text_of(e.prompt).lower() for e in examples]
    pig = dataset == "pig-latin" or bool(prompts) and all(p.startswith(PIG_LATIN_PREFIX) for p in prompts)
    return name, examples, pig


def encode_all(tokenizer: Any, examples: list[Example]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, prompt + answer ids) of each example, tokenized as SFTTrainer tokenizes the row."""
    return prompt_and_full_ids(tokenizer, [
        {"prompt": e.prompt, "completion": [{"role": "assistant", "content": e.reference}]
         if isinstance(e.prompt, list) else e.reference} for e in examples])


@torch.no_grad()
def batch_nll(model: Any, device: torch.device, pad_id: int,
              batch: list[tuple[list[int], list[int]]]) -> tuple[float, int]:
    """Summed answer-token NLL and the number of answer tokens, from the model's own loss (mean × count)."""
    batch = [fit_row(prompt, full, context_of(model)) for prompt, full in batch]  # too long: cut from the left
    fulls = [full for _, full in batch]
    ids, mask = padded(fulls, pad_id), attention_mask(fulls)
    labels = padded([[-100] * len(prompt) + full[len(prompt):] for prompt, full in batch], -100)  # answers only
    count = int((labels[:, 1:] != -100).sum())
    if count == 0:
        return 0.0, 0
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
    return float(out.loss) * count, count


GREEDY = SamplingSettings(temperature=0.0)


@torch.no_grad()
def batch_generate(model: Any, tokenizer: Any, device: torch.device, prompts: list[list[int]],
                   max_new_tokens: int, sampling: SamplingSettings = GREEDY, per_prompt: int = 1) -> list[str]:
    """Answers for a batch of prompts (left-padded, as decoder-only generation needs): greedy by default;
    with `sampling`, `per_prompt` sampled answers each, prompt by prompt (generate's num_return_sequences)."""
    prompts, max_new_tokens = fit_prompts(prompts, max_new_tokens, context_of(model))  # cut from the left
    pad = tokenizer.pad_token_id
    ids, mask = padded(prompts, pad, "left").to(device), attention_mask(prompts, "left").to(device)
    width = ids.shape[1]
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, pad_token_id=pad,
                         **{**generate_kwargs(sampling), "num_return_sequences": per_prompt})
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def _batches(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def evaluate(adapters: AdapterManager, request: EvalRequest, progress: Progress | None = None) -> EvalResult:
    """Run base and tuned over the held-out rows. Raises ValueError / AdapterError with a sentence."""
    say = progress or (lambda _f, _m: None)
    adapter = request.adapter_info(adapters).name
    with adapters.store.reading(Urgency.BATCH) as lm:
        tokenizer, device, model_name = lm.tokenizer, lm.device, lm.name
    chat = bool(getattr(tokenizer, "chat_template", None))
    say(0.0, "Loading the held-out rows…")
    name, examples, pig = load_examples(request.dataset.strip(), chat, request.max_rows)
    encoded = encode_all(tokenizer, examples)
    batches = _batches(encoded, request.batch_size)
    answered = _batches(encoded[:len(examples) if pig else request.answers], request.batch_size)
    steps = 2 * (len(batches) + len(answered))
    done = 0
    scores = []
    refs = [e.reference for e in examples]
    for label, name_ in (("base", None), ("tuned", adapter)):
        nll, count, preds = 0.0, 0, []
        for batch in batches:
            with adapters.using(name_, Urgency.BATCH) as lm:
                s, n = batch_nll(lm.model, lm.device, tokenizer.pad_token_id, batch)
            nll, count, done = nll + s, count + n, done + 1
            say(done / steps, f"{label}: loss on batch {done}/{steps}")
        for batch in answered:
            with adapters.using(name_, Urgency.BATCH) as lm:
                preds += batch_generate(lm.model, tokenizer, device, [p for p, _ in batch], request.max_new_tokens)
            done += 1
            say(done / steps, f"{label}: answering batch {done}/{steps}")
        loss = nll / max(1, count)
        scores.append(Scores(
            label=label if name_ is None else adapter, adapter=name_, loss=loss, perplexity=math.exp(min(loss, 50)),
            word_accuracy=sum(map(word_accuracy, preds, refs)) / len(refs) if pig else None,
            exact_match=sum(map(exact_match, preds, refs)) / len(refs) if pig else None, predictions=preds))
    say(1.0, "Done.")
    return EvalResult(dataset=name, model=model_name, rows=len(examples), pig_latin=pig, base=scores[0],
                      tuned=scores[1], references=[e.reference for e in examples])
