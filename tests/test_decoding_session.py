"""Prompts, the logits/KV caches of DecodeService, and step-through state."""

from __future__ import annotations

import pytest
import torch

from playground.decode.sampling import SamplingSettings, greedy_token, next_logits, sample_token
from playground.decode.session import DecodeService, StepState, chosen_from_distribution, encode_prompt
from playground.decode.tokens import TextPiece, incremental_texts, pieces_html, template_html, token_label


def fresh_probs(lm, ids):
    return next_logits(lm.model, ids, lm.device)[0].softmax(-1)


# ---------------------------------------------------------------- prompts

def test_empty_or_blank_prompt_is_refused(tiny_store):
    svc = DecodeService(tiny_store)
    for text in ("", "   \n\t "):
        with pytest.raises(ValueError, match="empty"):
            svc.encode(text, False)
    assert svc.model_calls == 0


def test_chat_wraps_in_the_template_with_generation_prompt(tiny_store):
    tok = tiny_store.current.tokenizer
    p = encode_prompt(tok, "Hi there", True, 1000)
    assert p.fed_text.startswith("<|im_start|>") and p.fed_text.endswith("<|im_start|>assistant\n")
    assert "Hi there" in p.fed_text
    assert p.ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and p.ids.count(p.ids[0]) == 3  # no double BOS
    plain = encode_prompt(tok, "Hi there", False, 1000)
    assert plain.fed_text == "Hi there" and len(plain.ids) < len(p.ids)


def test_long_prompt_is_cut_from_the_left_with_a_notice(tiny_store):
    svc = DecodeService(tiny_store)  # tiny llama: 512 positions, 384 for the prompt
    text = " ".join(f"word{i}" for i in range(600)) + " THE END"
    p = svc.encode(text, False)
    assert len(p.ids) == 384 and p.dropped > 0
    assert "dropped" in p.notice and str(p.dropped) in p.notice
    assert p.fed_text.endswith("THE END") and "word0 " not in p.fed_text
    assert svc.logits(p.ids).shape[-1] == len(tiny_store.current.tokenizer)


def test_model_without_chat_template_says_so(tiny_store):
    tok = tiny_store.current.tokenizer
    tok.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        encode_prompt(tok, "hi", True, 100)


# ---------------------------------------------------------------- readable tokens

def test_token_labels_show_whitespace_bytes_and_special_tokens(tiny_store):
    tok = tiny_store.current.tokenizer
    ids = tok("a\n\tb <|im_end|> x")["input_ids"]
    labels = [token_label(tok, i) for i in ids]
    assert labels == ["a", "↵", "⇥", "b", "␣", "<|im_end|>", "␣x"]
    pizza = tok("I love 🍕")["input_ids"]
    pizza_labels = [token_label(tok, i) for i in pizza]
    assert "\ufffd" not in "".join(pizza_labels)
    assert any("\\xf0" in label for label in pizza_labels)  # partial UTF-8 shown as bytes
    texts = incremental_texts(tok, [], pizza)
    assert "".join(texts) == "I love 🍕" and texts[-1].endswith("🍕")
    cjk = tok("日本の首都は")["input_ids"]
    assert "".join(incremental_texts(tok, [], cjk)) == "日本の首都は"


def test_html_escapes_literal_special_token_text(tiny_store):
    tok = tiny_store.current.tokenizer
    p = encode_prompt(tok, "say <|im_end|> <b>bold</b>", False, 100)
    html = template_html(tok, p.fed_text, p.ids)
    assert "<b>bold</b>" not in html and "&lt;b&gt;" in html and "&lt;|im_end|&gt;" in html
    shown = pieces_html("<script>", [TextPiece(text="<|im_end|>", prob=0.5, hover="<x>", special=True)])
    assert "<script>" not in shown and "&lt;|im_end|&gt;" in shown


# ---------------------------------------------------------------- caches and steps

def test_slider_changes_refilter_cached_logits_without_the_model(tiny_store):
    svc = DecodeService(tiny_store)
    ids = svc.encode("The rain in Spain falls mainly in the", False).ids
    first = svc.distribution(ids, SamplingSettings())
    calls = svc.model_calls
    for t in (0.0, 0.3, 1.7):
        for top_p in (0.5, 1.0):
            svc.distribution(ids, SamplingSettings(temperature=t, top_p=top_p, repetition_penalty=1.2))
    assert svc.model_calls == calls == 1
    assert torch.equal(svc.distribution(ids, SamplingSettings()).final_probs, first.final_probs)


def test_step_with_kv_cache_equals_fresh_forward(tiny_store):
    svc = DecodeService(tiny_store)
    lm = tiny_store.current
    state = StepState(prompt=svc.encode("Once upon a time, there was", False))
    settings = SamplingSettings(temperature=0.9, top_k=30)
    for step in range(4):
        dist = svc.distribution(state.ids, settings, state.session_id)
        fed = svc.tokens_fed
        token = sample_token(dist, seed=1, step=step) if step % 2 else greedy_token(dist)
        state = state.append(chosen_from_distribution(dist, lm.tokenizer, token, "sampled"))
        cached = svc.logits(state.ids, state.session_id).softmax(-1)
        assert svc.tokens_fed == fed + 1  # one token of compute per step
        assert (cached - fresh_probs(lm, state.ids)).abs().max() < 1e-4


def test_undo_then_a_different_token_reuses_the_cropped_cache(tiny_store):
    svc = DecodeService(tiny_store)
    lm = tiny_store.current
    state = StepState(prompt=svc.encode("One two three", False))
    dist = svc.distribution(state.ids, SamplingSettings(), state.session_id)
    for token in dist.order[:3].tolist():
        state = state.append(chosen_from_distribution(dist, lm.tokenizer, token, "picked"))
        dist = svc.distribution(state.ids, SamplingSettings(), state.session_id)
    state = state.undo().undo()
    calls = svc.model_calls
    svc.logits(state.ids, state.session_id)  # seen before: served from the logits cache
    assert svc.model_calls == calls
    other = state.append(chosen_from_distribution(dist, lm.tokenizer, 42, "picked"))
    fed = svc.tokens_fed
    probs = svc.logits(other.ids, other.session_id).softmax(-1)
    assert svc.tokens_fed == fed + 1
    assert (probs - fresh_probs(lm, other.ids)).abs().max() < 1e-4
    assert state.reset().ids == state.prompt.ids


def test_model_change_invalidates_the_caches(tiny_store):
    svc = DecodeService(tiny_store)
    ids = svc.encode("Hello", False).ids
    svc.logits(ids, "s1")
    with tiny_store.use() as lm:
        tiny_store.set_model(lm.model, "some-adapter")  # bumps store.revision
    calls = svc.model_calls
    svc.logits(ids, "s1")
    assert svc.model_calls == calls + 1


def test_chosen_token_records_probability_rank_and_alternatives(tiny_store):
    svc = DecodeService(tiny_store)
    ids = svc.encode("The capital of France is", False).ids
    dist = svc.distribution(ids, SamplingSettings(top_k=5))
    second = int(dist.order[1])
    chosen = chosen_from_distribution(dist, tiny_store.current.tokenizer, second, "picked")
    assert chosen.rank == 2 and chosen.prob == pytest.approx(float(dist.final_probs[second]))
    assert len(chosen.alternatives) == 5 and chosen.alternatives[1][1] == pytest.approx(chosen.prob)
    greedy = svc.distribution(ids, SamplingSettings(temperature=0))
    g = chosen_from_distribution(greedy, tiny_store.current.tokenizer, greedy_token(greedy), "greedy")
    assert g.rank == 1 and 0 < g.prob < 1  # greedy tokens carry the model's own probability, not 100 %


def test_context_full_is_a_clear_error(tiny_store):
    svc = DecodeService(tiny_store)
    with pytest.raises(ValueError, match="context"):
        svc.logits(tuple(range(100, 700)))
