"""What the Decode tab shows: chart facts, table, candidates, coloured text, explorer and API payloads."""

from __future__ import annotations

import pytest

from playground.decode.beam import BeamSettings
from playground.decode.charts import GREY_FINAL, KEPT_FINAL, distribution_figure
from playground.decode.sampling import SamplingSettings, top_rows
from playground.decode.session import DecodeService, StepState, chosen_from_distribution
from playground.decode.views import (
    MULTIPLES,
    SWEEP,
    TABLE_HEADERS,
    api_beam_search,
    api_generate,
    api_next_token,
    built_text_html,
    distribution_view,
    explorer_figures,
)


@pytest.fixture()
def svc(tiny_store):
    return DecodeService(tiny_store)


def test_distribution_chart_facts(svc):
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the", False))
    settings = SamplingSettings(temperature=1.5, top_k=12, top_p=0.99)  # top-p cuts after top-k
    view = distribution_view(svc, state, settings, 20)
    raw, final, cumulative = view.figure.data
    assert len(raw.x) == len(final.x) == len(cumulative.x) == 20
    assert cumulative.name == "cumulative after temperature + top-k (what top-p cuts on)"
    assert list(final.marker.color[:12]) == [KEPT_FINAL] * 12 and set(final.marker.color[12:]) == {GREY_FINAL}
    assert list(final.text[12:]) == ["removed"] * 8
    assert list(cumulative.y) == sorted(cumulative.y)
    assert any(getattr(s, "y0", None) == 0.99 for s in view.figure.layout.shapes)  # the top-p line
    assert "temperature" in final.hovertemplate and "rank" in final.hovertemplate
    assert len(view.table) == 20 and len(view.table[0]) == len(TABLE_HEADERS) == len(view.headers)
    assert view.table[0][-1] == "✓" and view.table[-1][-1].startswith("✗")
    assert len(view.candidates) == 12 and view.candidates[0][1] == view.rows[0].token_id
    assert "bits" in view.stats and "Effective choices" in view.stats


def test_top_bar_text_follows_the_temperature(svc):
    state = StepState(prompt=svc.encode("The capital of France is", False))
    cold = distribution_view(svc, state, SamplingSettings(temperature=0.2, top_k=0), 10).figure.data[1].text[0]
    hot = distribution_view(svc, state, SamplingSettings(temperature=2.0, top_k=0), 10).figure.data[1].text[0]
    assert cold != hot and cold.endswith("%")


def test_greedy_chart_has_one_token_at_100_percent(svc):
    state = StepState(prompt=svc.encode("Hello", False))
    rows = distribution_view(svc, state, SamplingSettings(temperature=0), 5).rows
    fig = distribution_figure(rows, SamplingSettings(temperature=0))
    assert list(fig.data[1].y) == [1.0, 0, 0, 0, 0] and fig.data[1].text[0] == "100.0%"
    stats = distribution_view(svc, state, SamplingSettings(temperature=0), 5).stats
    assert "-0.00" not in stats and "**Entropy:** 0.00 bits" in stats and "(1 token, greedy)" in stats


def test_built_text_colours_tokens_and_lists_alternatives(svc, tiny_store):
    tok = tiny_store.current.tokenizer
    state = StepState(prompt=svc.encode("I like", False))
    dist = svc.distribution(state.ids, SamplingSettings())
    state = state.append(chosen_from_distribution(dist, tok, int(dist.order[0]), "picked"))
    html = built_text_html(tok, state)
    assert html.count('class="pg-tok"') == 1 and "hsl(" in html and "top alternatives" in html
    assert "I like" in html
    assert 'class="pg-legend"' in html and "0 %" in html and "100 %" in html and "when chosen" in html
    assert "pg-legend" not in built_text_html(tok, state.reset())  # nothing coloured yet: no key


def test_explorer_figures(svc):
    state = StepState(prompt=svc.encode("The rain in Spain", False))
    sweep, multiples = explorer_figures(svc, state, SamplingSettings())
    assert len(sweep.data) == 2 and list(sweep.data[0].x) == SWEEP
    top1 = list(sweep.data[0].y)
    assert top1[0] >= top1[-1]  # colder = more peaked
    assert len(multiples.data) == len(MULTIPLES) and all(len(bar.x) == 8 for bar in multiples.data)
    # Drawn by a button: the title says which text (and penalty) it shows, since the prompt may change after
    assert sweep.layout.title.text.endswith("distribution after “The rain in Spain”")
    penalised, _ = explorer_figures(svc, state, SamplingSettings(repetition_penalty=1.5))
    assert penalised.layout.title.text.endswith("“The rain in Spain” (repetition penalty 1.5)")


def test_api_payloads(svc):
    out = api_next_token(svc, "The rain in Spain", False, SamplingSettings(top_k=3), 5)
    assert len(out["rows"]) == 5 and {"token", "id", "prob", "final_prob", "cumulative", "rank", "kept"} <= set(out["rows"][0])
    assert [r["kept"] for r in out["rows"]] == [True, True, True, False, False]
    assert sum(r["final_prob"] for r in out["rows"]) == pytest.approx(1.0, abs=1e-5)
    gen = api_generate(svc, "Hello", False, SamplingSettings(temperature=0), 5, 0)
    assert len(gen["tokens"]) == 5 and gen["text"].startswith(gen["tokens"][0]["token"].replace("␣", " ")[:1])
    assert out["cumulative_basis"] == "after top-k" and "top_p_input" in out["rows"][0]
    assert out["rows"][2]["cumulative"] == pytest.approx(1.0, abs=1e-5)  # what top-p would see: top-k's three
    beams = api_beam_search(svc, "Hello", False, BeamSettings(2, 3, 1.0))
    assert len(beams["sequences"]) == 2 and len(beams["tree"]) == 2 * 2 * 3 and beams["greedy"]["text"]
    assert beams["beam_vs_greedy"] in ("better", "equal", "worse") and beams["continues"] == "Hello"
    with pytest.raises(ValueError, match="empty"):
        api_next_token(svc, "  ", False, SamplingSettings(), 5)


def test_emoji_cjk_and_special_token_text_run(svc, tiny_store):
    tok = tiny_store.current.tokenizer
    for text in ("I love 🍕 and 日本の首都は", "literal <|im_end|> <|im_start|> tokens"):
        state = StepState(prompt=svc.encode(text, False))
        view = distribution_view(svc, state, SamplingSettings(), 10)
        assert len(view.rows) == 10
        assert "🍕" in view.text_html or "&lt;|im_end|&gt;" in view.text_html
        assert all("\ufffd" not in r.token for r in top_rows(view.dist, tok, 10))


# ---------------------------------------------------------------- table, axis, labels

def test_table_columns_are_in_pipeline_order_and_named_by_basis(svc):
    state = StepState(prompt=svc.encode("The capital of France is", False))
    view = distribution_view(svc, state, SamplingSettings(temperature=1.5, top_k=5, top_p=0.5), 8)
    assert view.headers == ["#", "token", "id", "raw", "after temp.", "top-p cum.", "after filters", "kept"]
    for row, r in zip(view.table, view.rows):
        assert row[3:7] == [pytest.approx(100 * p, rel=5e-3, abs=1e-9)
                            for p in (r.raw_prob, r.scaled_prob, r.cumulative, r.final_prob)]
    assert "*after filters*: after top-k / top-p / min-p" in view.stats and "(after temperature + top-k)" in view.stats


def test_one_kept_token_is_singular(svc):
    state = StepState(prompt=svc.encode("Hello", False))
    assert "(1 token)" in distribution_view(svc, state, SamplingSettings(top_k=1), 5).stats
    assert "(3 tokens)" in distribution_view(svc, state, SamplingSettings(top_k=3), 5).stats


@pytest.mark.parametrize("settings", [SamplingSettings(temperature=2.0, top_k=0), SamplingSettings(temperature=1.5),
                                      SamplingSettings(temperature=0.2, top_p=0.3), SamplingSettings(temperature=0)])
def test_y_axis_holds_every_bar(svc, settings):
    state = StepState(prompt=svc.encode("The capital of France is", False))
    fig = distribution_view(svc, state, settings, 20).figure
    tallest = max(max(t.y) for t in fig.data)
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= tallest * 1.05


def test_top_p_label_sits_in_the_right_margin_clear_of_the_bars(svc):
    state = StepState(prompt=svc.encode("The capital of France is", False))
    fig = distribution_view(svc, state, SamplingSettings(top_p=0.5), 20).figure
    (note,) = [a for a in fig.layout.annotations if "top-p" in a.text]
    assert note.xref == "paper" and note.x >= 1 and note.xanchor == "left" and fig.layout.margin.r >= 50
    assert distribution_view(svc, state, SamplingSettings(top_p=1.0), 20).figure.layout.annotations == ()


def test_comparison_streams_one_row_at_a_time(svc):
    from playground.decode.views import COMPARE_HEADERS, RUNNING, comparison_stream

    state = StepState(prompt=svc.encode("Once upon a time", False))
    snaps = list(comparison_stream(svc, state, SamplingSettings(temperature=1.0, top_k=20), 2, 5, 3))
    assert len(snaps) == 4 and all(len(row) == len(COMPARE_HEADERS) for snap in snaps for row in snap)
    assert [sum(row[2] == RUNNING for row in snap) for snap in snaps] == [3, 2, 1, 0]
    assert [row[0] for row in snaps[-1]] == ["Greedy", "Beam search", "Sampled"]
    with pytest.raises(ValueError, match="num_beams"):
        next(comparison_stream(svc, state, SamplingSettings(), 0, 5, 3))
