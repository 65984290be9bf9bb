"""What the Data section shows before training: a table of rows, token lengths, and the loss mask.

The loss mask is computed by TRL's own dataset preparation (`SFTTrainer._prepare_dataset`: chat template,
prompt/completion masking, truncation), called without building a trainer, so the preview is exactly what
training will use rather than a re-implementation that could drift from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

PREVIEW_CELL_CHARS = 300


@dataclass
class MaskedToken:
    text: str
    loss: bool  # True = the token is a training target


@dataclass
class LossMaskView:
    tokens: list[MaskedToken]
    n_tokens: int
    n_loss: int
    full_length: int  # tokens before truncation
    max_length: int

    @property
    def truncated(self) -> bool:
        return self.full_length > self.max_length

    def text(self) -> str:
        """The exact training text after the chat template (truncated part excluded)."""
        return "".join(t.text for t in self.tokens)

    def highlighted(self) -> list[tuple[str, str | None]]:
        """(text, label) pairs for gr.HighlightedText: "loss" on target tokens, None on masked ones."""
        out: list[tuple[str, str | None]] = []
        for tok in self.tokens:
            label = "loss" if tok.loss else None
            if out and out[-1][1] == label:
                out[-1] = (out[-1][0] + tok.text, label)
            else:
                out.append((tok.text, label))
        return out

    def summary(self) -> str:
        note = (f" Truncated from {self.full_length} to {self.max_length} tokens (max sequence length)."
                if self.truncated else "")
        return (f"{self.n_loss} of {self.n_tokens} tokens carry loss "
                f"({100 * self.n_loss / max(1, self.n_tokens):.0f} %).{note}")


def _trl_prepare(ds: Any, tokenizer: Any, completion_only_loss: bool, max_length: int | None) -> Any:
    """Tokenize rows exactly as SFTTrainer does, with a stand-in for the trainer (only the attributes its
    preparation reads), so no model is needed."""
    from trl import SFTTrainer

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    first = ds[0]
    is_pc = "prompt" in first and "completion" in first
    stand_in = SimpleNamespace(_tokenizer=tokenizer, chat_template=None,
                               completion_only_loss=bool(completion_only_loss and is_pc))
    args = SimpleNamespace(dataset_num_proc=None, dataset_text_field="text", assistant_only_loss=False,
                           max_length=max_length, truncation_mode="keep_start", shuffle_dataset=False, seed=0)
    return SFTTrainer._prepare_dataset(stand_in, ds, tokenizer, args, False, None, "preview")


def prompt_and_full_ids(tokenizer: Any, rows: list[dict[str, Any]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, prompt + answer ids) of prompt/completion rows (all plain text, or all chat), tokenized by
    SFTTrainer's own preparation: what training saw, EOS and chat template included. The prompt is the part
    TRL's completion mask leaves out of the loss."""
    from datasets import Dataset

    from playground.data.files import quiet_datasets

    if not rows:
        return []
    with quiet_datasets():
        prepared = _trl_prepare(Dataset.from_list(rows), tokenizer, True, None)
    out = []
    for ids, labels in zip(prepared["input_ids"], prepared["labels"]):
        start = next((i for i, label in enumerate(labels) if label != -100), len(labels))
        out.append((list(ids[:start]), list(ids)))
    return out


def loss_mask_view(row: dict[str, Any], tokenizer: Any, completion_only_loss: bool,
                   max_length: int) -> LossMaskView:
    """One formatted TRL row -> its tokens, each marked as carrying loss or masked."""
    from datasets import Dataset

    from playground.data.files import quiet_datasets

    with quiet_datasets():
        full = _trl_prepare(Dataset.from_list([row]), tokenizer, completion_only_loss, None)[0]
    ids, labels = full["input_ids"][:max_length], full["labels"][:max_length]
    # Decode cumulatively so multi-byte characters split across tokens come out whole.
    tokens, done = [], ""
    for i, label in enumerate(labels):
        text = tokenizer.decode(ids[: i + 1])
        tokens.append(MaskedToken(text[len(done):], label != -100))
        done = text
    return LossMaskView(tokens=tokens, n_tokens=len(ids), n_loss=sum(t.loss for t in tokens),
                        full_length=len(full["input_ids"]), max_length=max_length)


def token_lengths(ds: Any, tokenizer: Any, limit: int = 2000) -> list[int]:
    """Token count of each formatted row (first `limit` rows), before truncation."""
    from playground.data.files import quiet_datasets

    sample = ds.select(range(min(limit, len(ds))))
    with quiet_datasets():
        prepared = _trl_prepare(sample, tokenizer, False, None)
    return [len(ids) for ids in prepared["input_ids"]]


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CELL_CHARS else text[:PREVIEW_CELL_CHARS] + f"… (+{len(text) - PREVIEW_CELL_CHARS} chars)"


def preview_table(ds: Any, n: int = 8) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the first `n` source rows, long cells shortened."""
    headers = list(ds.column_names)
    rows = [[_cell(ds[i][h]) for h in headers] for i in range(min(n, len(ds)))]
    return headers, rows


@dataclass
class DataPreview:
    headers: list[str]
    rows: list[list[str]]
    summary: str  # markdown
    lengths: list[int]
    columns: list[str]  # source columns (for the mapping dropdowns)
    mask: LossMaskView
    mask_row: int  # 1-based row shown in the mask view


def build_preview(source: Any, tokenizer: Any, max_length: int, row: int = 1, seed: int = 42,
                  raw: Any = None) -> DataPreview:
    """Everything the Data section shows for a source; raises ValueError like training would."""
    from playground.data.loading import format_rows, load_raw, split_rows

    raw = raw or load_raw(source)
    with_template = bool(getattr(tokenizer, "chat_template", None))
    mapped, fmt, columns = format_rows(raw, source, with_template)
    train, evals = split_rows(mapped, source.eval_fraction, seed)
    headers, rows = preview_table(raw.dataset)
    lengths = token_lengths(mapped, tokenizer)
    index = min(max(1, int(row or 1)), len(mapped))
    mask = loss_mask_view(mapped[index - 1], tokenizer, source.completion_only_loss, max_length)
    over = sum(n > max_length for n in lengths)
    mapping = ", ".join(f"{role} ← `{col}`" for role, col in columns.items())
    summary = (f"**{raw.name}**: {len(mapped):,} rows → **{len(train):,} train** / "
               f"**{0 if evals is None else len(evals):,} eval** · format **{fmt.replace('_', '/')}** ({mapping})"
               f" · tokens per row: median {sorted(lengths)[len(lengths) // 2]}, max {max(lengths)}"
               + (f" · ⚠️ {over} of {len(lengths)} rows longer than {max_length} tokens get truncated" if over else ""))
    return DataPreview(headers=headers, rows=rows, summary=summary, lengths=lengths,
                       columns=list(raw.dataset.column_names), mask=mask, mask_row=index)
