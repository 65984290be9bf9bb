"""What the Decode tab shows: chart facts, table, candidates, coloured text, explorer and API payloads."""

from __future__ import annotations

import pytest

from playground.decode.beam import BeamSettings
from playground.decode.charts import GREY_FINAL, KEPT_FINAL, distribution_figure
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
from playground.decode.sampling import SamplingSettings, top_rows


@pytest.fixture()
def svc(tiny_store):
    return DecodeService(tiny_store)


def test_distribution_chart_facts(svc):
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the", False))
    settings = SamplingSettings(temperature=1.5, top_k=12, top_p=0.99)  # top-p cuts after top-k
    view = distribution_view(svc, state, settings, 20)
    raw, final, cumulative = view.figure.data
    assert len(raw.x) == len(final.x) == len(cumulative.x) == 20
    assert list(final.marker.color[:12]) == [KEPT_FINAL] * 12 and set(final.marker.color[12:]) == {GREY_FINAL}
    assert list(final.text[12:]) == ["removed"] * 8
    assert list(cumulative.y) == sorted(cumulative.y)
    assert any(getattr(s, "y0", None) == 0.99 for s in view.figure.layout.shapes)  # the top-p line
    assert "temperature" in final.hovertemplate and "rank" in final.hovertemplate
    assert len(view.table) == 20 and len(view.table[0]) == len(TABLE_HEADERS)
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


def test_built_text_colours_tokens_and_lists_alternatives(svc, tiny_store):
    tok = tiny_store.current.tokenizer
    state = StepState(prompt=svc.encode("I like", False))
    dist = svc.distribution(state.ids, SamplingSettings())
    state = state.append(chosen_from_distribution(dist, tok, int(dist.order[0]), "picked"))
    html = built_text_html(tok, state)
    assert html.count('class="pg-tok"') == 1 and "hsl(" in html and "top alternatives" in html
    assert "I like" in html


def test_explorer_figures(svc):
    state = StepState(prompt=svc.encode("The rain in Spain", False))
    sweep, multiples = explorer_figures(svc, state, SamplingSettings())
    assert len(sweep.data) == 2 and list(sweep.data[0].x) == SWEEP
    top1 = list(sweep.data[0].y)
    assert top1[0] >= top1[-1]  # colder = more peaked
    assert len(multiples.data) == len(MULTIPLES) and all(len(bar.x) == 8 for bar in multiples.data)


def test_api_payloads(svc):
    out = api_next_token(svc, "The rain in Spain", False, SamplingSettings(top_k=3), 5)
    assert len(out["rows"]) == 5 and {"token", "id", "prob", "final_prob", "cumulative", "rank", "kept"} <= set(out["rows"][0])
    assert [r["kept"] for r in out["rows"]] == [True, True, True, False, False]
    assert sum(r["final_prob"] for r in out["rows"]) == pytest.approx(1.0, abs=1e-5)
    gen = api_generate(svc, "Hello", False, SamplingSettings(temperature=0), 5, 0)
    assert len(gen["tokens"]) == 5 and gen["text"].startswith(gen["tokens"][0]["token"].replace("␣", " ")[:1])
    beams = api_beam_search(svc, "Hello", False, BeamSettings(2, 3, 1.0))
    assert len(beams["sequences"]) == 2 and len(beams["tree"]) == 2 * 2 * 3 and beams["greedy"]["text"]
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
