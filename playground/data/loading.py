"""Training data: bundled recipes, uploaded files and hub datasets, mapped onto the formats TRL trains on.

Rows are loaded with `datasets`, then mapped to one of TRL's dataset types:
  * conversational prompt/completion (`{"prompt": [msgs], "completion": [assistant msg]}`): TRL applies the
    chat template and puts the loss on the completion only;
  * conversational language modeling (`{"messages": [...]}`): loss on the whole conversation;
  * standard prompt/completion strings, or plain `{"text": ...}`.
Every problem becomes a ValueError with a sentence the UI shows as is (naming the line or row).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.data.files import file_sha256, load_file, quiet_datasets
from playground.data.messages import text_of
from playground.data.recipes import ASSETS, get_recipe
from playground.data.sources import DataSource

# Roles of each format; "input" (instruction format) is the only optional one.
FORMAT_ROLES = {"messages": ["messages"], "prompt_completion": ["prompt", "completion"],
                "instruction": ["instruction", "input", "output"], "text": ["text"]}
OPTIONAL_ROLES = {"input"}
ANSWER_ROLES = {"completion", "output"}  # optional for prompt-only data (GRPO samples its own answers)
# Column names recognised by "auto", per role (first match wins).
ROLE_ALIASES = {"messages": ["messages", "conversations", "conversation"], "prompt": ["prompt", "question", "query"],
                "completion": ["completion", "response", "answer"], "instruction": ["instruction"],
                "input": ["input", "context"], "output": ["output"], "text": ["text", "content"]}


@dataclass
class RawData:
    dataset: Any  # datasets.Dataset, columns as in the source
    name: str
    sha256: str


@dataclass
class PreparedData:
    """Rows mapped to a TRL format and split; what the trainer receives."""

    train: Any  # datasets.Dataset
    eval: Any | None
    name: str
    sha256: str
    rows: int
    format: str  # the resolved format (never "auto")
    columns: dict[str, str]  # role -> source column

    def summary(self) -> dict[str, Any]:
        """What the adapter card records of its data: all rows, and how they were split (the eval rows held out)."""
        return {"name": self.name, "rows": self.rows, "train_rows": len(self.train),
                "eval_rows": 0 if self.eval is None else len(self.eval), "sha256": self.sha256}


def load_raw(source: DataSource, assets: Path = ASSETS) -> RawData:
    """The rows as stored, before any mapping. Raises ValueError with a user-facing sentence."""
    source.validate()
    if source.kind == "recipe":
        recipe = get_recipe(source.recipe, assets)
        return RawData(load_file(recipe.train), recipe.id, file_sha256(recipe.train))
    if source.kind == "file":
        path = Path(source.path)
        return RawData(load_file(path), path.name, "" if not path.is_file() else file_sha256(path))
    from datasets import load_dataset

    hub_id, split = source.hub_id.strip(), (source.hub_split or "train").strip()
    try:
        ds = load_dataset(hub_id, split=split)
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"Could not load the hub dataset {hub_id} (split {split}): {first} "
                         "Offline, only datasets already in the Hugging Face cache can be used.") from None
    return RawData(ds, f"{hub_id}:{split}", hashlib.sha256(f"{hub_id}:{split}:{ds._fingerprint}".encode()).hexdigest())


# ---------------------------------------------------------------- formats

def resolve_format(columns: list[str], source: DataSource, prompts_only: bool = False) -> tuple[str, dict[str, str]]:
    """(format, role -> column) from the user's choice, or detected from the column names ("auto").
    `prompts_only` (GRPO): the answer column (completion / output) may be missing."""
    lower = {c.lower(): c for c in columns}
    optional = OPTIONAL_ROLES | ANSWER_ROLES if prompts_only else OPTIONAL_ROLES

    def find(role: str) -> str | None:
        if source.columns.get(role):
            return source.columns[role]
        return next((lower[a] for a in ROLE_ALIASES[role] if a in lower), None)

    fmt = source.format
    if fmt == "auto":
        for candidate in ("messages", "prompt_completion", "instruction", "text"):
            if all(find(role) for role in FORMAT_ROLES[candidate] if role not in optional):
                fmt = candidate
                break
        else:
            wanted = ("messages; prompt (+ completion); instruction (+ output)" if prompts_only else
                      "messages; prompt + completion; instruction + output; or text")
            raise ValueError(f"Could not tell the format from the columns ({', '.join(columns)}): choose a format "
                             f"and map the columns ({wanted}).")
    mapping: dict[str, str] = {}
    for role in FORMAT_ROLES[fmt]:
        column = find(role)
        if column is None:
            if role in optional:
                continue
            raise ValueError(f"The {fmt.replace('_', '/')} format needs a {role!r} column; the data has "
                             f"{', '.join(columns)}. Map one of them to {role!r}.")
        if column not in columns:
            raise ValueError(f"Column {column!r} (mapped to {role!r}) is not in the data; columns: "
                             f"{', '.join(columns)}.")
        mapping[role] = column
    return fmt, mapping


def _text(value: Any, what: str, row: int, allow_empty: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        value = ""
    if isinstance(value, (dict, list)):
        raise ValueError(f"Row {row}: the {what} should be text, not {type(value).__name__}.")
    text = str(value)
    if not text.strip() and not allow_empty:
        raise ValueError(f"Row {row}: the {what} is empty.")
    return text


def chat_messages(value: Any, row: int, what: str = "messages") -> list[dict[str, str]]:
    """A conversation cell (a list, or its JSON text from a CSV) -> {role, content} messages, ShareGPT's
    from/value converted by TRL; a ValueError naming the row and `what` (e.g. "the chosen answer") otherwise.
    The one check of SFT, GRPO and DPO rows."""
    from trl.data_utils import maybe_convert_to_chatml

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"Row {row}: {what} should be a list of {{role, content}} objects.") from None
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        raise ValueError(f"Row {row}: {what} should be a non-empty list of {{role, content}} objects.")
    value = maybe_convert_to_chatml({"messages": [dict(m) for m in value]})["messages"]  # ShareGPT from/value
    out = []
    for m in value:
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise ValueError(f"Row {row}: unknown message role {role!r} (system, user, assistant or tool).")
        out.append({"role": role, "content": _text(m.get("content"), f"{role} message", row, allow_empty=True)})
    return out


def wraps_in_chat(use_chat_template: bool, has_chat_template: bool) -> bool:
    """Whether plain prompt/answer rows become chat messages: the setting is on and the model has a chat template.
    The one rule of the worker, the previews and the exported scripts (they copy this function)."""
    return bool(use_chat_template and has_chat_template)


def to_training_row(row: dict[str, Any], number: int, fmt: str, columns: dict[str, str], source: DataSource,
                    chat: bool) -> dict[str, Any]:
    """One source row -> one TRL row. `chat`: wrap plain prompt/completion in the chat template."""
    if fmt == "messages":
        msgs = chat_messages(row[columns["messages"]], number)
        if not source.completion_only_loss:
            return {"messages": msgs}
        if msgs[-1]["role"] != "assistant" or len(msgs) < 2:
            raise ValueError(f"Row {number}: the last message is not an assistant answer, so there is no "
                             "completion to put the loss on. Turn completion-only loss off or fix the row.")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}  # TRL masks the prompt turns
    if fmt == "text":
        return {"text": _text(row[columns["text"]], "text", number)}
    if fmt == "instruction":
        prompt = _text(row[columns["instruction"]], "instruction", number)
        extra = _text(row.get(columns.get("input", ""), ""), "input", number, allow_empty=True) \
            if "input" in columns else ""
        prompt = f"{prompt}\n\n{extra}" if extra.strip() else prompt
        completion = _text(row[columns["output"]], "output", number)
    else:
        prompt = _text(row[columns["prompt"]], "prompt", number)
        completion = _text(row[columns["completion"]], "completion", number)
    if chat:
        return {"prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": completion}]}
    return {"prompt": prompt, "completion": completion}


def format_rows(raw: RawData, source: DataSource, has_chat_template: bool = True) -> tuple[Any, str, dict[str, str]]:
    """Map every row; returns (dataset in TRL form, resolved format, role -> column)."""
    ds = raw.dataset
    if source.max_rows:
        ds = ds.select(range(min(source.max_rows, len(ds))))
    if len(ds) == 0:
        raise ValueError(f"{raw.name} has no rows.")
    fmt, columns = resolve_format(list(ds.column_names), source)
    chat = wraps_in_chat(source.use_chat_template, has_chat_template)
    with quiet_datasets():
        mapped = ds.map(lambda row, i: to_training_row(row, i + 1, fmt, columns, source, chat), with_indices=True,
                        remove_columns=ds.column_names, keep_in_memory=True)
    return mapped, fmt, columns


def split_rows(ds: Any, eval_fraction: float, seed: int) -> tuple[Any, Any | None]:
    """Seeded train/eval split; refuses datasets too small to train (and evaluate) on."""
    n = len(ds)
    if n < 2:
        raise ValueError(f"The dataset has {n} row{'s' if n != 1 else ''}; training needs at least 2.")
    if eval_fraction <= 0:
        return ds, None
    n_eval = math.ceil(n * eval_fraction)
    if n - n_eval < 1:
        raise ValueError(f"With eval fraction {eval_fraction}, no rows are left for training (0 of {n}); "
                         "lower the eval fraction.")
    parts = ds.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def prepare_data(source: DataSource, seed: int = 42, has_chat_template: bool = True,
                 assets: Path = ASSETS) -> PreparedData:
    """Load, map and split; everything the trainer needs from the data side."""
    raw = load_raw(source, assets)
    mapped, fmt, columns = format_rows(raw, source, has_chat_template)
    train, evals = split_rows(mapped, source.eval_fraction, seed)
    return PreparedData(train=train, eval=evals, name=raw.name, sha256=raw.sha256, rows=len(mapped),
                        format=fmt, columns=columns)


def prompt_of(row: dict[str, Any]) -> str:
    """The user-side text of a TRL row (the default probe for user data)."""
    prompt = row.get("prompt", row.get("messages"))
    if isinstance(prompt, (list, str)):
        return text_of(prompt)
    return str(row.get("text", ""))[:200]
