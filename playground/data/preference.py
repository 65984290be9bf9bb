"""Preference pairs for DPO: `prompt` / `chosen` / `rejected`, plain strings or conversations, from a bundled
recipe, an uploaded file or a hub dataset (same sources as SFT data), mapped onto TRL's preference format.

Accepted rows (columns found by name, or mapped with the form's column pickers):
  * plain: `{"prompt": "...", "chosen": "...", "rejected": "..."}` (wrapped in the chat template when the model
    has one, like SFT's prompt/completion rows);
  * conversational: `{"prompt": [msgs], "chosen": [assistant msg], "rejected": [assistant msg]}`;
  * implicit prompt: `{"chosen": [full conversation], "rejected": [full conversation]}`: the shared leading
    turns become the prompt (as TRL's `extract_prompt` does).
Bad rows raise ValueError naming the row: a missing rejected answer, chosen equal to rejected, an empty prompt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from playground.data.files import quiet_datasets
from playground.data.loading import PreparedData, chat_messages, load_raw, split_rows, wraps_in_chat
from playground.data.messages import text_of
from playground.data.recipes import ASSETS
from playground.data.sources import DataSource

PREFERENCE_ROLES = ["prompt", "chosen", "rejected"]
ALIASES = {"prompt": ["prompt", "question", "query", "instruction"],
           "chosen": ["chosen", "preferred", "accepted", "good"],
           "rejected": ["rejected", "dispreferred", "bad"]}
WHAT = {"prompt": "prompt", "chosen": "chosen answer", "rejected": "rejected answer"}


def resolve_preference_columns(columns: list[str], source: DataSource) -> dict[str, str]:
    """role -> column for prompt (optional: implicit in chosen/rejected conversations), chosen, rejected."""
    if source.format not in ("auto",):
        raise ValueError("DPO trains on preference pairs (prompt / chosen / rejected): set Format to "
                         "Auto-detect and map the columns if their names differ.")
    lower = {c.lower(): c for c in columns}
    mapping: dict[str, str] = {}
    for role in PREFERENCE_ROLES:
        picked = source.columns.get(role)
        column = picked or next((lower[a] for a in ALIASES[role] if a in lower), None)
        if picked and picked not in columns:
            raise ValueError(f"Column {picked!r} (mapped to {role!r}) is not in the data; columns: "
                             f"{', '.join(columns)}.")
        if column is None and role != "prompt":
            raise ValueError(f"DPO needs a {role!r} column (the {WHAT[role]} of each pair); the data has "
                             f"{', '.join(columns)}. Map one of them to {role!r}.")
        if column is not None:
            mapping[role] = column
    return mapping


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def _parse(value: Any) -> Any:
    """JSON text of a conversation (CSV cells) -> the list; anything else unchanged."""
    if isinstance(value, str) and value.lstrip().startswith("[{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def to_preference_row(row: dict[str, Any], number: int, columns: dict[str, str], chat: bool) -> dict[str, Any]:
    """One source row -> one TRL preference row, or ValueError naming the row and what is wrong."""
    values = {role: _parse(row.get(col)) for role, col in columns.items()}
    for role in ("chosen", "rejected", "prompt"):
        if role in columns and _missing(values[role]):
            word = "empty" if role == "prompt" else "missing"
            raise ValueError(f"Row {number}: the {WHAT[role]} is {word}.")
    chosen, rejected, prompt = values["chosen"], values["rejected"], values.get("prompt")
    if isinstance(chosen, list) or isinstance(rejected, list):
        if not (isinstance(chosen, list) and isinstance(rejected, list)):
            raise ValueError(f"Row {number}: chosen and rejected must both be text or both be conversations.")
        chosen = chat_messages(chosen, number, "the chosen answer")
        rejected = chat_messages(rejected, number, "the rejected answer")
        if prompt is None:  # implicit prompt: the shared leading turns, split as DPOTrainer splits them
            from trl.data_utils import extract_prompt  # lazy: trl is heavy, and most callers never get here

            split = extract_prompt({"chosen": chosen, "rejected": rejected})
            prompt, chosen, rejected = split["prompt"], split["chosen"], split["rejected"]
        elif isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        else:
            prompt = chat_messages(prompt, number, "the prompt")
        if not prompt or not any(m["content"].strip() for m in prompt):
            raise ValueError(f"Row {number}: the prompt is empty.")
        texts = ["".join(m["content"] for m in chosen), "".join(m["content"] for m in rejected)]
        if not texts[1].strip():
            raise ValueError(f"Row {number}: the rejected answer is missing.")
        if not texts[0].strip():
            raise ValueError(f"Row {number}: the chosen answer is missing.")
    else:
        if prompt is None:
            raise ValueError(f"Row {number}: the prompt is empty (plain-text pairs need a prompt column).")
        if isinstance(prompt, list):
            raise ValueError(f"Row {number}: the prompt is a conversation but the answers are plain text.")
        prompt, chosen, rejected = str(prompt), str(chosen), str(rejected)
        texts = [chosen, rejected]
        if chat:
            prompt = [{"role": "user", "content": prompt}]
            chosen, rejected = [{"role": "assistant", "content": chosen}], [{"role": "assistant", "content": rejected}]
    if texts[0].strip() == texts[1].strip():
        raise ValueError(f"Row {number}: the chosen and rejected answers are the same, so there is nothing to "
                         "prefer. Fix or drop the row.")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def format_preference(raw: Any, source: DataSource, has_chat_template: bool = True) -> tuple[Any, dict[str, str]]:
    """Map every row of a RawData; returns (dataset in TRL preference form, role -> column)."""
    ds = raw.dataset
    if source.max_rows:
        ds = ds.select(range(min(source.max_rows, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"{raw.name} has no rows.")
    columns = resolve_preference_columns(list(ds.column_names), source)
    chat = wraps_in_chat(source.use_chat_template, has_chat_template)
    rows = [to_preference_row(ds[i], i + 1, columns, chat) for i in range(len(ds))]
    from datasets import Dataset

    with quiet_datasets():
        return Dataset.from_list(rows), columns


def prepare_preference(source: DataSource, seed: int = 42, has_chat_template: bool = True,
                       assets: Path = ASSETS) -> PreparedData:
    """Load, map and split preference pairs (the DPO counterpart of loading.prepare_data)."""
    raw = load_raw(source, assets)
    mapped, columns = format_preference(raw, source, has_chat_template)
    train, evals = split_rows(mapped, source.eval_fraction, seed)
    return PreparedData(train=train, eval=evals, name=raw.name, sha256=raw.sha256, rows=len(mapped),
                        format="preference", columns=columns)


def pair_ids(rows: Any, tokenizer: Any) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt ids, chosen ids, rejected ids) of each pair, tokenized by DPOTrainer's own preparation (a stand-in
    for the trainer: only the attributes it reads, so no model is needed): EOS added to plain-text answers, the
    chat template applied, the answers starting where prompt and prompt + answer diverge. No length cap."""
    from datasets import Dataset
    from trl import DPOTrainer

    rows = rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))
    if len(rows) == 0:
        return []
    conversations = isinstance(rows[0]["chosen"], list)
    if conversations and not getattr(tokenizer, "chat_template", None):  # DPO would fail on the first pair
        raise ValueError("These pairs are conversations (lists of messages), but this model has no chat template "
                         "to render them: use text prompt / chosen / rejected columns, or a model with a chat "
                         "template.")
    if not conversations and not getattr(tokenizer, "eos_token", None):
        raise ValueError("This model's tokenizer has no end-of-text token, which DPO appends to every plain-text "
                         "answer: use a model that has one, or pairs of conversations.")
    stand_in = SimpleNamespace(_tokenizer=tokenizer)
    args = SimpleNamespace(dataset_num_proc=None, max_length=None, truncation_mode="keep_start")
    with quiet_datasets():
        done = DPOTrainer._prepare_dataset(stand_in, rows, tokenizer, args, "preview")
    return [(list(p), list(c), list(r)) for p, c, r in zip(done["prompt_ids"], done["chosen_ids"],
                                                           done["rejected_ids"])]


def pair_lengths(ds: Any, tokenizer: Any, limit: int = 500) -> tuple[list[int], list[int]]:
    """(prompt tokens, longer answer's tokens) per pair (first `limit` pairs), as DPO training tokenizes them."""
    ids = pair_ids(ds.select(range(min(limit, len(ds)))), tokenizer)
    return [len(p) for p, _, _ in ids], [max(len(c), len(r)) for _, c, r in ids]


def preference_preview(source: DataSource, tokenizer: Any, max_prompt: int, max_answer: int, row: int = 1,
                       seed: int = 42, raw: Any = None) -> dict[str, Any]:
    """What the Data section shows for preference pairs: the pairs side by side (prompt | chosen | rejected),
    the split, token lengths and the budget check. Raises ValueError like training would."""
    raw = raw or load_raw(source)
    mapped, columns = format_preference(raw, source, bool(getattr(tokenizer, "chat_template", None)))
    train, evals = split_rows(mapped, source.eval_fraction, seed)
    n = min(8, len(mapped))
    rows = [[str(i + 1), _short(text_of(r["prompt"])), _short(text_of(r["chosen"])), _short(text_of(r["rejected"]))]
            for i, r in enumerate(mapped.select(range(n)))]
    prompt_lens, answer_lens = pair_lengths(mapped, tokenizer)
    cap = max_prompt + max_answer  # TRL 1.16 caps the pair (DPOConfig.max_length), not prompt and answer apart
    cut = sum(p + a > cap for p, a in zip(prompt_lens, answer_lens))
    dropped = sum(p >= cap for p in prompt_lens)  # TRL drops a pair whose prompt alone fills max_length
    mapping = ", ".join(f"{role} ← `{col}`" for role, col in columns.items())
    summary = (f"**{raw.name}**: {len(mapped):,} pairs → **{len(train):,} train** / "
               f"**{0 if evals is None else len(evals):,} eval** · format **preference** ({mapping})"
               f" · prompt tokens: median {sorted(prompt_lens)[len(prompt_lens) // 2]}, answer tokens: max "
               f"{max(answer_lens)}")
    if cut:
        summary += (f" · ⚠️ {cut} pair(s) over {cap} tokens (prompt + longer answer) are cut at the end"
                    + (f", {dropped} of them dropped (the prompt alone fills it)" if dropped else ""))
    index = min(max(1, int(row or 1)), len(mapped))
    pick = mapped[index - 1]
    pair = [(f"Prompt: {text_of(pick['prompt'])}\n", None), (f"✓ chosen: {text_of(pick['chosen'])}\n", "chosen"),
            (f"✗ rejected: {text_of(pick['rejected'])}", "rejected")]
    info = (f"Row {index}: DPO raises the chosen answer's log-probability relative to the rejected one's "
            "(both measured against the reference model); the prompt is shared and carries no loss.")
    return {"summary": summary, "headers": ["#", "prompt", "chosen ✓", "rejected ✗"], "rows": rows,
            "lengths": [p + a for p, a in zip(prompt_lens, answer_lens)], "columns": list(raw.dataset.column_names),
            "pair": pair, "info": info, "row": index}


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + f"… (+{len(text) - limit} chars)"
