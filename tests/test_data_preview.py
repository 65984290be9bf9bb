"""The Data preview: loss-mask view (computed by TRL's own preparation), token lengths, the row table."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from playground.data.loading import format_rows, load_raw
from playground.data.preview import build_preview, loss_mask_view, preview_table, token_lengths
from playground.data.sources import DataSource

ROW = {"prompt": [{"role": "user", "content": "Translate to Pig Latin: the cat"}],
       "completion": [{"role": "assistant", "content": "ethay atcay"}]}


@pytest.fixture(scope="module")
def tok(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def test_completion_only_mask_covers_exactly_the_answer(tok):
    view = loss_mask_view(ROW, tok, completion_only_loss=True, max_length=256)
    text = view.text()
    assert text.startswith("<|im_start|>system\n")  # the exact chat-template text, default system prompt included
    assert "<|im_start|>user\nTranslate to Pig Latin: the cat<|im_end|>\n<|im_start|>assistant\n" in text
    target = "".join(t.text for t in view.tokens if t.loss)
    assert target == "ethay atcay<|im_end|>\n"
    assert 0 < view.n_loss < view.n_tokens and not view.truncated
    pieces = view.highlighted()
    assert pieces[-1] == ("ethay atcay<|im_end|>\n", "loss") and pieces[0][1] is None
    assert f"{view.n_loss} of {view.n_tokens} tokens carry loss" in view.summary()


def test_full_loss_marks_every_token(tok):
    view = loss_mask_view(ROW, tok, completion_only_loss=False, max_length=256)
    assert view.n_loss == view.n_tokens and all(t.loss for t in view.tokens)
    msgs = {"messages": ROW["prompt"] + ROW["completion"]}
    whole = loss_mask_view(msgs, tok, completion_only_loss=False, max_length=256)
    assert whole.text() == view.text() and whole.n_loss == whole.n_tokens


def test_100k_character_row_is_truncated_to_max_length(tok, tmp_path):
    path = tmp_path / "long.jsonl"
    rows = [{"prompt": "word " * 20_000, "completion": "end"}, {"prompt": "short", "completion": "ok"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(rows[0]["prompt"]) == 100_000
    source = DataSource(kind="file", path=str(path), eval_fraction=0)
    preview = build_preview(source, tok, max_length=64, row=1)
    assert preview.mask.truncated and preview.mask.n_tokens == 64 and preview.mask.full_length > 20_000
    assert preview.mask.n_loss == 0  # the answer is past the cut: this row teaches nothing at this length
    assert "Truncated from" in preview.mask.summary()
    assert "1 of 2 rows longer than 64 tokens get truncated" in preview.summary
    assert preview.rows[0][0].endswith("chars)")  # long cells are shortened in the table


def test_token_lengths_and_preview_table(tok):
    source = DataSource(recipe="pig-latin", max_rows=20)
    mapped, _, _ = format_rows(load_raw(source), source)
    lengths = token_lengths(mapped, tok)
    assert len(lengths) == 20 and all(40 < n < 100 for n in lengths)
    headers, rows = preview_table(load_raw(source).dataset, n=3)
    assert headers == ["messages"] and len(rows) == 3 and "Translate to Pig Latin" in rows[0][0]


def test_preview_summary_counts_split_rows(tok):
    p = build_preview(DataSource(recipe="pig-latin", eval_fraction=0.1), tok, max_length=128, row=5)
    assert "694 rows → **624 train** / **70 eval**" in p.summary and p.mask_row == 5
    assert p.mask.text().count("Translate to Pig Latin") == 1
