"""The sampling pipeline: each filter on hand-made logits, validation, and parity with generate()."""

from __future__ import annotations

import math

import pytest
import torch

from playground.decode.sampling import (
    BY_MIN_P,
    BY_TOP_K,
    BY_TOP_P,
    KEPT,
    SamplingSettings,
    analyze,
    build_processors,
    cumulative_basis,
    generate_kwargs,
    next_logits,
    sample_token,
    temperature_sweep,
    token_logprobs,
    top_rows,
)
from playground.decode.session import encode_prompt

PROBS = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
LOGITS = PROBS.log()
IDS = [4]  # the "prompt": one token, so the repetition penalty has something to act on


def dist(**kw):
    return analyze(LOGITS, IDS, SamplingSettings(**{"top_k": 0, **kw}))


def test_no_filters_keeps_the_model_distribution():
    d = dist()
    assert torch.allclose(d.final_probs, PROBS, atol=1e-6)
    assert d.kept.all() and d.mass_kept == pytest.approx(1.0)
    assert d.order.tolist() == [0, 1, 2, 3, 4]
    assert d.cumulative().tolist() == pytest.approx([0.5, 0.7, 0.85, 0.95, 1.0], abs=1e-6)


def test_top_k_keeps_k_and_renormalises():
    d = dist(top_k=2)
    assert d.final_probs.tolist() == pytest.approx([0.5 / 0.7, 0.2 / 0.7, 0, 0, 0], abs=1e-6)
    assert d.removed_by.tolist() == [KEPT, KEPT, BY_TOP_K, BY_TOP_K, BY_TOP_K]
    assert d.mass_kept == pytest.approx(0.7, abs=1e-6)


def test_top_p_keeps_the_smallest_set_reaching_p():
    d = dist(top_p=0.8)  # 0.5 + 0.2 = 0.7 < 0.8, so the third token is needed
    assert d.kept.tolist() == [True, True, True, False, False]
    assert d.removed_by[3] == BY_TOP_P
    assert d.final_probs.tolist() == pytest.approx([0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0], abs=1e-6)


def test_min_p_cuts_relative_to_the_top_token():
    d = dist(min_p=0.25)  # threshold 0.25 * 0.5 = 0.125
    assert d.kept.tolist() == [True, True, True, False, False]
    assert d.removed_by[4] == BY_MIN_P


def test_temperature_is_softmax_of_logits_over_t():
    d = dist(temperature=0.5)
    expected = PROBS ** 2 / (PROBS ** 2).sum()
    assert torch.allclose(d.scaled_probs, expected, atol=1e-6)
    assert torch.allclose(d.final_probs, expected, atol=1e-6)
    hot = dist(temperature=2.0)
    assert hot.entropy_bits > dist().entropy_bits > d.entropy_bits


def test_temperature_zero_is_greedy_without_division_by_zero():
    d = dist(temperature=0.0, top_p=0.5)
    assert d.final_probs.tolist() == [1.0, 0, 0, 0, 0]
    assert not torch.isnan(d.final_probs).any() and not torch.isnan(d.scaled_probs).any()
    assert d.entropy_bits == 0.0 and d.effective_choices == 1.0 and d.kept_count == 1
    assert sample_token(d, seed=3, step=0) == 0


def test_repetition_penalty_lowers_tokens_already_seen():
    d = analyze(LOGITS, [0], SamplingSettings(top_k=0, repetition_penalty=3.0))  # token 0 is in the text
    assert d.scaled_probs[0] < 0.5
    assert d.order[0] == 1  # negative logit times 3: log 0.5 * 3 = log 0.125 < log 0.2


def test_filters_combine_in_generate_order_and_match_the_processor_list():
    s = SamplingSettings(temperature=0.7, top_k=4, top_p=0.9, min_p=0.1, repetition_penalty=1.3)
    d = analyze(LOGITS, IDS, s)
    expected = build_processors(s)(torch.tensor([IDS]), LOGITS[None].clone()).softmax(-1)[0]
    assert torch.allclose(d.final_probs, expected, atol=1e-7)
    assert [type(p).__name__ for p in build_processors(s)] == [
        "RepetitionPenaltyLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper",
        "MinPLogitsWarper"]


def test_entropy_and_effective_choices():
    d = analyze(torch.zeros(4), [0], SamplingSettings(top_k=0))
    assert d.entropy_bits == pytest.approx(2.0) and d.effective_choices == pytest.approx(4.0)


def test_temperature_sweep_sharpens_and_flattens():
    sweep = temperature_sweep(LOGITS, [0.1, 1.0, 2.0])
    (t1, top1, h1), (_, top2, h2), (_, top3, h3) = sweep
    assert top1 > 0.99 and top2 == pytest.approx(0.5, abs=1e-6) and top3 < 0.5
    assert h1 < h2 < h3


@pytest.mark.parametrize("field,kwargs", [
    ("top_p", dict(top_p=0)), ("top_p", dict(top_p=1.5)), ("top_k", dict(top_k=-1)), ("top_k", dict(top_k=2.5)),
    ("temperature", dict(temperature=-0.1)), ("temperature", dict(temperature=float("nan"))),
    ("min_p", dict(min_p=1.2)), ("repetition_penalty", dict(repetition_penalty=0)),
])
def test_out_of_range_values_name_the_field(field, kwargs):
    values = dict(temperature=1.0, top_k=50, top_p=1.0, min_p=0.0, repetition_penalty=1.0) | kwargs
    with pytest.raises(ValueError, match=field):
        SamplingSettings.from_values(**values)
    with pytest.raises(ValueError, match=field):
        SamplingSettings(**values)


def test_slider_floats_are_accepted():
    s = SamplingSettings.from_values(0.5, 40.0, "0.9", 0, 1)
    assert s.top_k == 40 and isinstance(s.top_k, int) and s.top_p == 0.9


# ---------------------------------------------------------------- parity with generate()

def _generate_scores(lm, ids, settings, seed=0):
    input_ids = torch.tensor([ids])
    torch.manual_seed(seed)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                            output_scores=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
    return out.scores[0][0], int(out.sequences[0, -1])


@pytest.mark.parametrize("settings", [
    SamplingSettings(),
    SamplingSettings(temperature=0.7, top_k=20, top_p=0.9, min_p=0.02, repetition_penalty=1.3),
    SamplingSettings(temperature=1.8, top_k=0, top_p=0.5),
    SamplingSettings(temperature=0.4, top_k=0, min_p=0.2, repetition_penalty=0.8),
])
def test_final_probabilities_equal_generate_output_scores(tiny_store, settings):
    lm = tiny_store.current
    ids = encode_prompt(lm.tokenizer, "The rain in Spain falls mainly in the rain", False, 400).ids
    logits, _ = next_logits(lm.model, ids, lm.device)
    d = analyze(logits, ids, settings)
    for seed in (0, 1, 2):
        scores, token = _generate_scores(lm, list(ids), settings, seed)
        assert (scores.softmax(-1) - d.final_probs).abs().max() < 1e-6
        torch.manual_seed(seed)  # generate() samples with torch.multinomial on the global RNG
        assert int(torch.multinomial(d.final_probs, 1)[0]) == token
    assert d.final_probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_greedy_matches_generate_argmax(tiny_store):
    lm = tiny_store.current
    ids = list(encode_prompt(lm.tokenizer, "Hello there", False, 400).ids)
    settings = SamplingSettings(temperature=0.0, repetition_penalty=1.5)
    d = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings)
    scores, token = _generate_scores(lm, ids, settings)
    assert d.final_probs[token] == 1.0
    assert torch.allclose(scores.softmax(-1), d.scaled_probs, atol=1e-6)


def test_parity_on_the_bundled_model_chat_prompt(bundled_store):
    settings = SamplingSettings(temperature=0.8, top_k=40, top_p=0.92, min_p=0.03, repetition_penalty=1.1)
    with bundled_store.use() as lm:
        ids = list(encode_prompt(lm.tokenizer, "The capital of France is", True, 4000).ids)
        d = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings)
        scores, _ = _generate_scores(lm, ids, settings)
        rows = top_rows(d, lm.tokenizer, 20)
    assert (scores.softmax(-1) - d.final_probs).abs().max() < 1e-5
    assert len(rows) == 20 and rows[0].rank == 1 and all(a.cumulative <= b.cumulative for a, b in zip(rows, rows[1:]))
    assert rows[0].token_id == int(d.final_probs.argmax())
    with bundled_store.use() as lm:  # the course example, plain text: " Paris" is among the top candidates
        ids = list(encode_prompt(lm.tokenizer, "The capital of France is", False, 4000).ids)
        plain = top_rows(analyze(next_logits(lm.model, ids, lm.device)[0], ids, SamplingSettings()), lm.tokenizer, 5)
    assert "␣Paris" in [r.token for r in plain], [r.token for r in plain]
    assert math.isclose(float(d.final_probs.sum()), 1.0, abs_tol=1e-4)


# ---------------------------------------------------------------- what top-p cuts on

def test_cumulative_is_what_top_p_cuts_on_after_top_k():
    d = dist(top_k=2, top_p=0.6)  # after top-k: 0.5/0.7 = 0.714, 0.2/0.7 = 0.286
    assert d.cumulative().tolist() == pytest.approx([0.5 / 0.7, 1.0, 1.0, 1.0, 1.0], abs=1e-6)
    assert d.removed_by.tolist() == [KEPT, BY_TOP_P, BY_TOP_K, BY_TOP_K, BY_TOP_K]
    assert cumulative_basis(d.settings) == "after top-k"
    # the old line (sum after temperature) read 0.5 at rank 1: below 0.6, as if rank 2 survived
    assert dist(top_p=0.6).cumulative()[0] == pytest.approx(0.5)


@pytest.mark.parametrize("kw", [dict(top_p=0.8), dict(top_k=3, top_p=0.7), dict(temperature=1.7, top_k=4, top_p=0.5),
                                dict(temperature=0.6, top_k=2, top_p=0.9, repetition_penalty=1.4)])
def test_top_p_keeps_a_token_exactly_while_the_sum_before_it_is_below_p(kw):
    d = dist(**kw)
    cum = [0.0] + d.cumulative().tolist()
    for rank, tid in enumerate(d.order.tolist()):
        if d.removed_by[tid] == BY_TOP_K:
            continue
        assert (d.removed_by[tid] == BY_TOP_P) == (cum[rank] >= d.settings.top_p - 1e-6), (rank, cum)


def test_cumulative_basis_names_the_stages_before_top_p():
    assert cumulative_basis(SamplingSettings(top_k=0)) == "raw"
    assert cumulative_basis(SamplingSettings(temperature=1.5, top_k=5, top_p=0.5)) == "after temperature + top-k"
    assert cumulative_basis(SamplingSettings(temperature=0.5, top_k=0, repetition_penalty=1.2)) == \
        "after repetition penalty + temperature"


def test_one_token_entropy_is_plus_zero():
    for d in (dist(temperature=0.0), dist(top_k=1)):
        assert d.entropy_bits == 0.0 and math.copysign(1.0, d.entropy_bits) == 1.0
        assert f"{d.entropy_bits:.2f}" == "0.00"
    assert all(math.copysign(1.0, h) == 1.0 for _, _, h in temperature_sweep(torch.tensor([0.0, -80.0]), [0.1]))


def test_settings_are_checked_once_with_the_same_sentences(monkeypatch):
    import playground.decode.settings as knobs

    calls = []
    real_float, real_int = knobs.check_float, knobs.check_int
    monkeypatch.setattr(knobs, "check_float", lambda *a, **k: calls.append(a[0]) or real_float(*a, **k))
    monkeypatch.setattr(knobs, "check_int", lambda *a, **k: calls.append(a[0]) or real_int(*a, **k))
    s = SamplingSettings.from_values("0.5", 40.0, 0.9, 0, 1)
    assert sorted(calls) == sorted([*knobs.FIVE, *knobs.MORE])  # each knob once, the five first
    assert s == SamplingSettings(0.5, 40, 0.9, 0.0, 1.0) and isinstance(s.top_k, int)
    with pytest.raises(ValueError) as err:
        SamplingSettings(top_p=1.5)
    assert str(err.value) == "top_p must be in (0, 1] (1 = off); got 1.5."


def test_the_course_picture_top_k_then_top_p_on_the_bundled_model(bundled_store):
    """T 1.5, top-k 5, top-p 0.5: only ' Paris' survives, and the cumulative line says why (≥ p at rank 1)."""
    settings = SamplingSettings(temperature=1.5, top_k=5, top_p=0.5)
    with bundled_store.use() as lm:
        ids = list(encode_prompt(lm.tokenizer, "The capital of France is", False, 4000).ids)
        rows = top_rows(analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings), lm.tokenizer, 8)
    assert rows[0].token == "␣Paris" and rows[0].kept and [r.removed_by for r in rows[1:5]] == ["top-p"] * 4
    assert rows[0].cumulative >= 0.5 > rows[0].scaled_prob  # the old after-temperature sum stayed below p
    assert rows[4].cumulative == pytest.approx(1.0, abs=1e-5)  # top-k left five tokens: they sum to 1


def test_token_logprobs_read_each_row_and_keep_a_nan_as_a_value():
    logits = torch.stack([LOGITS, LOGITS.flip(0), torch.tensor([0.0, -math.inf, 1.0, float("nan"), 0.0])])
    got = token_logprobs(logits, [0, 0, 2])
    assert got[:2].tolist() == pytest.approx([math.log(0.5), math.log(0.05)], abs=1e-6)
    assert math.isnan(float(got[2]))  # half precision can make a NaN: the view shows it, no error after the answer
    assert token_logprobs(torch.tensor([[0.0, -math.inf]]), [0]).tolist() == pytest.approx([0.0])
