"""The Decode tab's words say what the pipeline did: greedy titles, strategy rows, column names, token labels."""

from __future__ import annotations

import math

import pytest
from transformers.convert_slow_tokenizer import bytes_to_unicode

from playground.decode.charts import distribution_figure
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState
from playground.decode.strategies import StrategyResult, strategy_runs
from playground.decode.tokens import token_label, visible
from playground.decode.views import COMPARE_HEADERS, TABLE_HEADERS, distribution_view


@pytest.fixture()
def svc(tiny_store):
    return DecodeService(tiny_store)


def test_greedy_title_names_the_stages_that_still_run_before_argmax():
    plain = distribution_figure([], SamplingSettings(temperature=0)).layout.title.text
    assert plain == "Greedy (temperature 0): the top token gets 100 %"
    shaped = SamplingSettings(temperature=0, repetition_penalty=1.5, no_repeat_ngram_size=2, top_k=50, top_p=0.5,
                              sequence_bias=(((5,), 2.0),), bad_words_ids=((7,),))
    title = distribution_figure([], shaped).layout.title.text
    assert title.startswith("Greedy (temperature 0)") and title.endswith("the top token gets 100 %")
    for stage in ("repetition penalty 1.5", "no-repeat 2-gram", "1 biased sequence", "1 banned sequence"):
        assert stage in title
    assert "top-p" not in title and "top-k" not in title  # generate() adds no warpers at temperature 0


def test_strategy_row_at_temperature_0_is_greedy_not_sampled():
    run = strategy_runs(SamplingSettings(temperature=0, top_p=0.5, repetition_penalty=1.3), 2, 7)[2]
    assert run.kwargs["do_sample"] is False
    assert "Sampled" not in run.name and "greedy" in run.name.lower() and "temperature 0" in run.name
    assert "argmax every step after repetition penalty 1.3" in run.detail
    assert "top-k, top-p, min-p and seed unused" in run.detail
    assert "top-p=0.5" not in run.detail and "seed 7" not in run.detail
    sampled = strategy_runs(SamplingSettings(temperature=0.7), 2, 7)[2]
    assert sampled.kwargs["do_sample"] is True and sampled.name == "Sampled" and "seed 7" in sampled.detail


def test_mean_token_prob_is_named_geometric():
    r = StrategyResult("x", "", "", [1, 2], math.log(0.9) + math.log(0.1))
    assert r.geometric_mean_prob == pytest.approx(0.3)  # √(0.9·0.1), not the arithmetic 0.5
    assert COMPARE_HEADERS[-1] == "geometric mean token prob"


@pytest.mark.parametrize("settings, header, hover", [
    (SamplingSettings(temperature=0), "no temp. (greedy)", "no temperature (greedy)"),
    (SamplingSettings(temperature=0, repetition_penalty=1.5), "after penalty", "after repetition penalty"),
    (SamplingSettings(temperature=0.7, sequence_bias=(((5,), 2.0),)), "after bias + temp.",
     "after sequence bias + temperature"),
    (SamplingSettings(temperature=0.7, repetition_penalty=1.2), "after penalty + temp.",
     "after repetition penalty + temperature"),
])
def test_scaled_column_is_named_by_the_stages_that_reshaped_it(svc, settings, header, hover):
    state = StepState(prompt=svc.encode("one two three one two three one", False))
    view = distribution_view(svc, state, settings, 8)
    assert view.headers[4] == header and len(view.headers) == len(TABLE_HEADERS)
    assert f"*{header}*" in view.stats
    template = view.figure.data[0].hovertemplate
    assert f"{hover} %{{customdata[3]" in template
    assert "after penalty + temperature" not in template  # the old fixed label
    if header == "no temp. (greedy)":  # nothing reshaped the scores: the column is the raw one
        assert all(row[3] == row[4] for row in view.table)


def test_default_sampling_keeps_the_after_temp_header(svc):
    state = StepState(prompt=svc.encode("Hello", False))
    assert distribution_view(svc, state, SamplingSettings(), 5).headers == TABLE_HEADERS


def test_control_characters_show_as_escapes(tiny_store):
    assert visible("\x0c") == "\\x0c" and visible("a\x00b\x7f\x85") == "a\\x00b\\x7f\\x85"
    assert visible(" \n\t\r") == "␣↵⇥␍" and visible("") == "∅"
    tok = tiny_store.current.tokenizer
    form_feed = tok.convert_tokens_to_ids(bytes_to_unicode()[0x0C])  # the byte-level piece of "\x0c"
    assert tok.decode([form_feed]) == "\x0c" and token_label(tok, form_feed) == "\\x0c"
