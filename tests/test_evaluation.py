"""Held-out evaluation of base vs tuned: loss on the answer tokens, Pig Latin scores, chart, bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_adapters_fixtures import manager  # noqa: F401

from playground.compare.charts import metrics_figure
from playground.compare.evaluation import EvalRequest, Example, encode_all, evaluate, load_examples
from playground.data.pig_latin import exact_match, word_accuracy


def _plain_answer_loss(model_dir, tokenizer, examples) -> float:
    """Token-weighted mean NLL of the answers under a plain copy of the model, one row at a time."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total, count = 0.0, 0
    for prompt, full in encode_all(tokenizer, examples):
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([full])).logits[0, :-1].log_softmax(-1)
        for pos in range(len(prompt), len(full)):
            total -= float(logp[pos - 1, full[pos]])
            count += 1
    return total / count


def test_pig_latin_eval_base_vs_tuned(manager, tiny_llama_dir):
    manager.activate("beta")  # evaluate another adapter than the active one: it must be restored after
    steps = []
    result = evaluate(manager, EvalRequest("pig-latin", adapter="alpha", max_rows=6, batch_size=4,
                                           max_new_tokens=6), progress=lambda f, m: steps.append(f))
    assert manager.store.current.active_adapter == "beta"
    assert result.rows == 6 and result.pig_latin and result.dataset == "pig-latin"
    assert result.base.adapter is None and result.tuned.adapter == "alpha" and result.tuned.label == "alpha"
    tok = manager.store.current.tokenizer
    _, examples, _ = load_examples("pig-latin", True, 6)
    assert result.base.loss == pytest.approx(_plain_answer_loss(tiny_llama_dir, tok, examples), rel=1e-4)
    assert result.tuned.loss != pytest.approx(result.base.loss, rel=1e-6)
    assert result.base.perplexity == pytest.approx(math.exp(result.base.loss))
    for s in (result.base, result.tuned):
        assert len(s.predictions) == 6
        assert s.word_accuracy == pytest.approx(sum(map(word_accuracy, s.predictions, result.references)) / 6)
        assert s.exact_match == pytest.approx(sum(map(exact_match, s.predictions, result.references)) / 6)
    assert steps == sorted(steps) and steps[-1] == 1.0 and len(steps) >= 8
    fig = metrics_figure(result)
    assert len(fig.data) == 4 and all(list(t.x) == ["base", "alpha"] for t in fig.data)
    assert [a.text for a in fig.layout.annotations] == ["loss ↓", "perplexity ↓", "word accuracy ↑",
                                                        "exact match ↑"]
    table = result.table()
    assert result.headers() == ["model", "adapter", "loss ↓", "perplexity ↓", "word accuracy ↑", "exact match ↑",
                                "rows"]
    assert [r[0] for r in table] == ["base", "alpha"] and table[0][6] == 6 and table[1][4].endswith(" %")
    assert result.as_api()["tuned"]["adapter"] == "alpha" and len(result.samples(3)) == 3
    assert "word accuracy and exact match score the greedy answers of all 6 rows" in result.metric_note()
    assert result.answers_label() == "First 6 answers on pig-latin (greedy): reference · base · alpha"


def test_uploaded_prompt_completion_file_uses_the_active_adapter(manager, tmp_path):
    path = tmp_path / "held-out.jsonl"
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    manager.activate("alpha")
    result = evaluate(manager, EvalRequest(str(path), max_rows=60))
    assert result.rows == 5 and not result.pig_latin and result.tuned.adapter == "alpha"
    assert result.base.word_accuracy is None
    # Every dataset shows the first answers of both models, side by side with the reference.
    assert len(result.base.predictions) == len(result.tuned.predictions) == 5
    assert [r[0] for r in result.samples()] == [str(2 * i) for i in range(5)]
    # Only the metrics that apply: no empty word-accuracy columns, and a sentence that says why.
    assert result.headers() == ["model", "adapter", "loss ↓", "perplexity ↓", "rows"]
    assert all(len(row) == 5 and "—" not in row[2:4] for row in result.table())
    assert "no automatic answer score (word accuracy applies to Pig Latin only)" in result.metric_note()
    assert result.answers_label() == "First 5 answers on held-out.jsonl (greedy): reference · base · alpha"
    assert len(metrics_figure(result).data) == 2
    api = result.as_api()
    assert api["metrics"] == ["loss", "perplexity"] and api["answers"][0]["reference"] == "0"


def test_yoda_recipe_shows_answers_and_names_its_metrics(manager):
    """The issue: on the Yoda recipe the answers table was empty and word accuracy showed '—'."""
    result = evaluate(manager, EvalRequest("yoda", adapter="alpha", max_rows=10, answers=3, max_new_tokens=4))
    assert not result.pig_latin and result.rows == 10
    assert len(result.samples()) == 3 and all(len(row) == 3 for row in result.samples())
    assert "word accuracy" not in " ".join(result.headers()) and "yoda" in result.metric_note()
    assert [a.text for a in metrics_figure(result).layout.annotations] == ["loss ↓", "perplexity ↓"]


def test_pig_latin_detected_in_an_uploaded_file(manager, tmp_path):
    path = tmp_path / "pig.jsonl"
    rows = [{"messages": [{"role": "user", "content": "Translate to Pig Latin: hello there"},
                          {"role": "assistant", "content": "ellohay erethay"}]}] * 2
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = evaluate(manager, EvalRequest(str(path), adapter="beta", max_new_tokens=4))
    assert result.pig_latin and result.tuned.word_accuracy is not None


def test_bad_eval_input(manager, tmp_path):
    with pytest.raises(ValueError, match="No adapter to evaluate"):
        evaluate(manager, EvalRequest("pig-latin"))
    with pytest.raises(ValueError, match="no adapter named 'ghost'"):
        evaluate(manager, EvalRequest("pig-latin", adapter="ghost"))
    with pytest.raises(ValueError, match="does not exist"):
        evaluate(manager, EvalRequest(str(tmp_path / "missing.jsonl"), adapter="alpha"))
    text_only = tmp_path / "text.jsonl"
    text_only.write_text(json.dumps({"text": "just some text"}) + "\n")
    with pytest.raises(ValueError, match="prompt and an answer"):
        evaluate(manager, EvalRequest(str(text_only), adapter="alpha"))
    with pytest.raises(ValueError, match="Choose a recipe"):
        EvalRequest("")
    with pytest.raises(ValueError, match="max_rows"):
        EvalRequest("pig-latin", max_rows=0)


def test_the_held_out_loss_counts_the_tokens_training_puts_loss_on(manager):
    """The answer tokens of each row are the ones the trainer's own preparation (the Train tab's loss-mask
    preview) puts loss on: EOS included, a chat prompt through the template, and a plain prompt and answer that
    share a word boundary tokenized joined, as TRL joins them."""
    from playground.data.preview import loss_mask_view

    tok = manager.store.current.tokenizer
    cases = [Example([{"role": "user", "content": "Translate to Pig Latin: the cat"}], "ethay atcay"),
             Example("Translate to Pig Latin: the cat", " ethay atcay"),
             Example("Say it twice: ab", "ab!")]  # no space: the answer's first token may merge with the prompt's
    for ex in cases:
        [(prompt, full)] = encode_all(tok, [ex])
        completion = [{"role": "assistant", "content": ex.reference}] if isinstance(ex.prompt, list) else ex.reference
        view = loss_mask_view({"prompt": ex.prompt, "completion": completion}, tok, True, 4096)
        assert view.n_tokens == len(full) and view.n_loss == len(full) - len(prompt) > 0
        assert full[-1] == tok.eos_token_id or tok.decode(full).rstrip().endswith(tok.eos_token)
