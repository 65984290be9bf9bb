"""Where training or evaluation rows come from: a bundled recipe, an uploaded file or a hub dataset.

Each field's `metadata` is its entry in the training settings' schema (label, help, widget, range, layout):
see playground.train.schema for the keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DataKind = Literal["recipe", "file", "hub"]
DataFormat = Literal["auto", "messages", "prompt_completion", "instruction", "text"]
KINDS = [("Bundled recipe", "recipe"), ("Upload a file", "file"), ("Hub dataset", "hub")]
FORMATS = [("Auto-detect", "auto"), ("Chat messages", "messages"), ("Prompt / completion", "prompt_completion"),
           ("Instruction / input / output", "instruction"), ("Plain text", "text")]
MAX_EVAL_FRACTION = 0.9
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?$")  # name or owner/name, no path parts
FORMAT_GROUP = "Format, columns and loss masking"


@dataclass
class DataSource:
    """Where the rows come from and how their columns map onto a training format."""

    kind: DataKind = field(default="recipe", metadata=dict(
        label="Source", help="A bundled recipe, your own JSONL / JSON / CSV file, or a Hugging Face dataset.",
        widget="radio", choices=KINDS, error="Data source must be recipe, file or hub (got {value!r}).",
        sticky=True))
    recipe: str = field(default="pig-latin", metadata=dict(
        label="Recipe", help="A small bundled dataset with training defaults that work on a laptop CPU.",
        widget="dropdown", open=True, sticky=True))
    path: str = field(default="", metadata=dict(  # an uploaded file (copied into the run folder at start)
        label="JSONL / JSON / CSV (≤ 200 MB)", help="One example per row; columns are detected below.",
        widget="file", sticky=True))
    hub_id: str = field(default="", metadata=dict(
        label="Hub dataset id", help="e.g. user/dataset (needs the network unless it is cached).", row="hub",
        sticky=True))
    hub_split: str = field(default="train", metadata=dict(
        label="Split", help="Which split of the hub dataset to train on.", row="hub", sticky=True))
    format: DataFormat = field(default="auto", metadata=dict(
        label="Format", help="How rows become training examples; auto-detect reads the column names.",
        widget="dropdown", choices=FORMATS, error="Unknown data format {value!r}.", group=FORMAT_GROUP))
    # role -> column name, e.g. {"prompt": "question", "completion": "answer"}; empty = the standard names
    columns: dict[str, str] = field(default_factory=dict, metadata=dict(
        label="Columns", help="Which column plays which role (empty = the standard names).", widget="columns",
        group=FORMAT_GROUP))
    completion_only_loss: bool = field(default=True, metadata=dict(
        label="Loss on the answer only (completion-only)",
        help="Prompt tokens are masked out of the loss (TRL prompt/completion masking).", row="masking",
        group=FORMAT_GROUP))
    use_chat_template: bool = field(default=True, metadata=dict(
        label="Wrap prompt/completion rows in the chat template",
        help="Train on the same chat format the model answers in.", row="masking", group=FORMAT_GROUP))
    eval_fraction: float = field(default=0.1, metadata=dict(
        label="Eval fraction", help="Share of the rows held out to measure the eval loss (0 = no eval).",
        widget="slider", ge=0, lt=MAX_EVAL_FRACTION, step=0.01, row="split", group=FORMAT_GROUP))
    max_rows: int | None = field(default=None, metadata=dict(
        label="Max rows", help="Use only the first N rows, for quick experiments (0 = all).", ge=1, zero=True,
        error="{label} must be at least 1 (got {value}).", row="split", group=FORMAT_GROUP, sticky=True))

    def validate(self) -> None:
        if self.kind not in [value for _, value in KINDS]:
            raise ValueError(f"Data source must be recipe, file or hub (got {self.kind!r}).")
        if self.kind == "recipe" and not self.recipe:
            raise ValueError("Choose a recipe.")
        if self.kind == "file" and not self.path:
            raise ValueError("Upload a JSONL, JSON or CSV file first.")
        if self.kind == "hub":
            check_hub_id(self.hub_id)
        if self.format not in [value for _, value in FORMATS]:
            raise ValueError(f"Unknown data format {self.format!r}.")
        if not 0 <= self.eval_fraction < MAX_EVAL_FRACTION:
            raise ValueError(f"Eval fraction must be between 0 and {MAX_EVAL_FRACTION} (got {self.eval_fraction}).")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"Max rows must be at least 1 (got {self.max_rows}).")


def check_hub_id(hub_id: str) -> str:
    """A Hugging Face dataset id, `name` or `owner/name`. `datasets.load_dataset` also reads a local folder or
    file given as the id, which would let the hub box read any server folder past the path policy: refused."""
    hub_id = (hub_id or "").strip()
    if not hub_id:
        raise ValueError("Type a hub dataset id (e.g. user/dataset).")
    if not HUB_ID.match(hub_id) or ".." in hub_id or Path(hub_id).expanduser().exists():
        raise ValueError(f"Hub dataset id {hub_id!r} must be a Hugging Face id like user/dataset, not a path on "
                         "the server: for your own file choose Source → Upload a file.")
    return hub_id
