"""Where training or evaluation rows come from: a bundled recipe, an uploaded file or a hub dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DataKind = Literal["recipe", "file", "hub"]
DataFormat = Literal["auto", "messages", "prompt_completion", "instruction", "text"]


@dataclass
class DataSource:
    """Where the rows come from and how their columns map onto a training format."""

    kind: DataKind = "recipe"
    recipe: str = "pig-latin"
    path: str = ""  # an uploaded JSONL / JSON / CSV file (copied into the run folder at start)
    hub_id: str = ""
    hub_split: str = "train"
    format: DataFormat = "auto"
    # role -> column name, e.g. {"prompt": "question", "completion": "answer"}; empty = the standard names
    columns: dict[str, str] = field(default_factory=dict)
    completion_only_loss: bool = True  # loss on the answer only (TRL prompt/completion masking)
    use_chat_template: bool = True  # wrap prompt/completion and instruction rows in the model's chat template
    eval_fraction: float = 0.1
    max_rows: int | None = None  # use only the first N rows (quick experiments)

    def validate(self) -> None:
        if self.kind not in ("recipe", "file", "hub"):
            raise ValueError(f"Data source must be recipe, file or hub (got {self.kind!r}).")
        if self.kind == "recipe" and not self.recipe:
            raise ValueError("Choose a recipe.")
        if self.kind == "file" and not self.path:
            raise ValueError("Upload a JSONL, JSON or CSV file first.")
        if self.kind == "hub" and not self.hub_id.strip():
            raise ValueError("Type a hub dataset id (e.g. user/dataset).")
        if self.format not in ("auto", "messages", "prompt_completion", "instruction", "text"):
            raise ValueError(f"Unknown data format {self.format!r}.")
        if not 0 <= self.eval_fraction < 0.9:
            raise ValueError(f"Eval fraction must be between 0 and 0.9 (got {self.eval_fraction}).")
        if self.max_rows is not None and self.max_rows < 1:
            raise ValueError(f"Max rows must be at least 1 (got {self.max_rows}).")
