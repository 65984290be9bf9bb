"""Prompts for GRPO: the user side of any prompt-bearing dataset (chat messages, prompt/completion,
instruction/output). The answers in the data are not trained on; GRPO samples its own and scores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playground.data.files import quiet_datasets
from playground.data.loading import PreparedData, format_rows, load_raw, split_rows
from playground.data.recipes import ASSETS
from playground.data.sources import DataSource


def prompt_row(row: dict[str, Any]) -> dict[str, Any]:
    """A formatted TRL row -> {"prompt": ...}: the prompt side, or for whole conversations every turn before
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
    mapped, fmt, columns = format_rows(raw, source, has_chat_template)
    if fmt == "text":
        raise ValueError(f"{raw.name} has plain text rows; GRPO needs prompts to answer (messages, "
                         "prompt/completion or instruction/output rows).")
    with quiet_datasets():
        prompts = mapped.map(prompt_row, remove_columns=mapped.column_names, keep_in_memory=True)
    for i, row in enumerate(prompts):
        if not row["prompt"]:
            raise ValueError(f"Row {i + 1}: the prompt is empty.")
    train, _held_out = split_rows(prompts, source.eval_fraction, seed)
    return PreparedData(train=train, eval=None, name=raw.name, sha256=raw.sha256, rows=len(prompts),
                        format=f"prompts ({fmt.replace('_', '/')})", columns=columns)
