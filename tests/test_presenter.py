"""Presenter mode without a browser: the Decode charts carry a plotly transition and stay the same traces from one
state to the next (what plotly needs to animate), and the page script names elements the app really has."""

from __future__ import annotations

import re

import pytest

from playground.decode.charts import TRANSITION
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState
from playground.decode.views import distribution_view


@pytest.fixture()
def svc(tiny_store):
    return DecodeService(tiny_store)


def _views(svc, *settings: SamplingSettings):
    state = StepState(prompt=svc.encode("The capital of France is", False))
    return [distribution_view(svc, state, s, 20) for s in settings]


def test_a_temperature_change_keeps_the_traces_and_moves_the_bars(svc):
    hot, cold = _views(svc, SamplingSettings(temperature=0.8, top_k=3), SamplingSettings(temperature=0.2, top_k=3))
    for fig in (hot.figure, cold.figure, hot.waterfall, cold.waterfall):
        assert fig.layout.transition.duration == 400 and fig.layout.transition.easing == "cubic-in-out"
    assert TRANSITION == {"duration": 400, "easing": "cubic-in-out"}
    # the distribution: same traces, bars keyed by token id, and the top final bar really grows
    assert [t.uid for t in hot.figure.data] == [t.uid for t in cold.figure.data] == ["raw", "final", "cumulative"]
    assert list(hot.figure.data[1].ids) == list(cold.figure.data[1].ids)
    assert cold.figure.data[1].y[0] > hot.figure.data[1].y[0] + 0.01
    # the waterfall: the same traces (per stage: kept, removed, coming in), bars keyed by token id
    uids = [t.uid for t in cold.waterfall.data]
    assert [t.uid for t in hot.waterfall.data] == uids and uids[:2] == ["raw-kept", "raw-removed"]
    assert "temperature-kept" in uids and "top-k-in" in uids
    assert [list(t.ids) for t in hot.waterfall.data] == [list(t.ids) for t in cold.waterfall.data]


def test_waterfall_traces_stay_put_when_a_stage_starts_removing_shown_tokens(svc):
    # top-k 50 removes none of the 20 shown tokens, top-k 3 removes most: the same traces either way
    wide, narrow = _views(svc, SamplingSettings(temperature=0.5, top_k=50), SamplingSettings(temperature=0.5, top_k=3))
    assert [t.uid for t in wide.waterfall.data] == [t.uid for t in narrow.waterfall.data]
    legend = {t.name for t in narrow.waterfall.data if t.showlegend is not False}
    assert "removed by top-k" in legend
    assert "removed by top-k" not in {t.name for t in wide.waterfall.data if t.showlegend is not False}


def test_the_page_script_names_the_apps_elements(tiny_store):
    from playground.services import Services
    from playground.ui import presenter
    from playground.ui.app_ui import build_app

    config = build_app(Services.create(tiny_store, tiny_store.settings.data_dir), presenter=True).get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    head = presenter.presenter_head(True)
    named = set(re.findall(r"#(decode-[a-z-]+|pg-presenter-toggle)", head))
    assert {"decode-greedy", "decode-sample", "decode-undo", "decode-reset", "decode-more", "decode-seed",
            "decode-template-box", "decode-prompt"} <= named
    assert named - ids == set(), "the presenter script or CSS names an element the app does not have"
    assert all(f"decode-example-{i}" in ids for i in range(6))
    toggle = next(c for c in config["components"] if c["props"].get("elem_id") == presenter.TOGGLE_ID)
    assert toggle["props"]["value"] is True and toggle["props"]["label"] == "Presenter mode"
    # without ?presenter= the page opens in the server's mode
    assert "q === null ? true :" in head and "q === null ? false :" in presenter.presenter_head(False)
