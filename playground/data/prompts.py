"""Prompts for GRPO: the user side of any prompt-bearing dataset (chat messages, prompt/completion,
instruction/output), answers optional. TRL's prompt-only rows (`{"prompt": "..."}` or `{"prompt": [msgs]}`) and
chats of user turns only are accepted as they are. The answers in the data are not trained on; GRPO samples its
own and scores them (the preview scores the data's answers, when there are, as a check of the rules)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playground.data.files import quiet_datasets
from playground.data.loading import (PreparedData, RawData, chat_messages, _text, load_raw, resolve_format, split_rows,
                                     wraps_in_chat)
from playground.data.recipes import ASSETS
from playground.data.sources import DataSource


def _answer_text(value: Any) -> str:
    """The data's own answer as text ("" when there is none): GRPO does not train on it."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list):
        return "".join(str(m.get("content") or "") for m in value if isinstance(m, dict))
    return str(value)


def to_prompt_row(row: dict[str, Any], number: int, fmt: str, columns: dict[str, str], chat: bool) -> dict[str, Any]:
    """One source row -> {"prompt": text or messages, "completion": the data's answer as text, or ""}."""
    answer = ""
    if fmt == "messages":
        prompt: Any = chat_messages(row[columns["messages"]], number)
        if prompt[-1]["role"] == "assistant":  # every turn before the last answer
            prompt, answer = prompt[:-1], prompt[-1]["content"]
    elif fmt == "instruction":
        prompt = _text(row[columns["instruction"]], "instruction", number)
        extra = _text(row.get(columns["input"]), "input", number, allow_empty=True) if "input" in columns else ""
        prompt = f"{prompt}\n\n{extra}" if extra.strip() else prompt
        answer = _answer_text(row.get(columns["output"])) if "output" in columns else ""
    else:
        value = row[columns["prompt"]]
        if isinstance(value, str) and value.lstrip().startswith("[{"):
            try:
                value = json.loads(value)  # a conversation stored as JSON text (CSV cells)
            except json.JSONDecodeError:
                pass
        prompt = chat_messages(value, number) if isinstance(value, list) else _text(value, "prompt", number)
        answer = _answer_text(row.get(columns["completion"])) if "completion" in columns else ""
    if isinstance(prompt, list) and not any(m["content"].strip() for m in prompt):
        raise ValueError(f"Row {number}: the prompt is empty.")
    if isinstance(prompt, str) and chat:
        prompt = [{"role": "user", "content": prompt}]
    return {"prompt": prompt, "completion": answer}


def format_prompts(raw: RawData, source: DataSource, has_chat_template: bool = True) -> tuple[Any, str, dict[str, str]]:
    """Map every row to a prompt (and the data's answer, for the preview); returns (rows, format, role -> column).
    No completion-only check: that is an SFT setting."""
    ds = raw.dataset
    if source.max_rows:
        ds = ds.select(range(min(source.max_rows, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"{raw.name} has no rows.")
    fmt, columns = resolve_format(list(ds.column_names), source, prompts_only=True)
    if fmt == "text":
        raise ValueError(f"{raw.name} has plain text rows; GRPO needs prompts to answer (a prompt column, chat "
                         "messages, prompt/completion or instruction/output rows).")
    chat = wraps_in_chat(source.use_chat_template, has_chat_template)
    with quiet_datasets():
        mapped = ds.map(lambda row, i: to_prompt_row(row, i + 1, fmt, columns, chat), with_indices=True,
                        remove_columns=ds.column_names, keep_in_memory=True)
    return mapped, fmt, columns


def prompt_row(row: dict[str, Any]) -> dict[str, Any]:
    """A formatted row -> {"prompt": ...}: the prompt side, or for whole conversations every turn before
    the last assistant answer."""
    if "prompt" in row and row["prompt"] is not None:
        return {"prompt": row["prompt"]}
    messages = row["messages"]
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    return {"prompt": messages}


def prepare_prompts(source: DataSource, seed: int = 42, has_chat_template: bool = True,
                    assets: Path = ASSETS) -> PreparedData:
    """Load, map and split; the eval split is held out (not trained on) and not handed to the trainer."""
    raw = load_raw(source, assets)
    mapped, fmt, columns = format_prompts(raw, source, has_chat_template)
    with quiet_datasets():
        prompts = mapped.map(prompt_row, remove_columns=mapped.column_names, keep_in_memory=True)
    for i, row in enumerate(prompts):
        if not row["prompt"]:
            raise ValueError(f"Row {i + 1}: the prompt is empty.")
    train, _held_out = split_rows(prompts, source.eval_fraction, seed)
    return PreparedData(train=train, eval=None, name=raw.name, sha256=raw.sha256, rows=len(prompts),
                        format=f"prompts ({fmt.replace('_', '/')})", columns=columns)
