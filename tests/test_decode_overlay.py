"""Decode tab with an adapter active: the next-token chart overlays the base model's probabilities."""

from __future__ import annotations

import math

import pytest
from test_adapters_fixtures import manager  # noqa: F401

from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState
from playground.decode.views import distribution_view


def test_overlay_appears_only_with_an_adapter_and_shows_base_probabilities(manager):
    from playground.adapters.live import next_token_probs_base_vs_tuned

    svc = DecodeService(manager.store)
    state = StepState(prompt=svc.encode("The capital of France is", chat=False))
    settings = SamplingSettings(temperature=1.0, top_k=0)
    plain = distribution_view(svc, state, settings, 10)
    assert [t.name for t in plain.figure.data if t.name.startswith("base")] == []
    assert "base raw" not in plain.headers and "base model" not in plain.stats

    manager.activate("alpha")
    view = distribution_view(svc, state, settings, 10)
    overlay = [t for t in view.figure.data if t.name == "base (without alpha)"]
    assert len(overlay) == 1 and len(overlay[0].y) == 10
    base = next_token_probs_base_vs_tuned(manager.store, __import__("torch").tensor(state.ids)).base
    assert list(overlay[0].y) == pytest.approx([float(base[r.token_id]) for r in view.rows])
    # The table gets the same numbers as a column next to the (tuned) raw one, and the stats say what it is.
    col = view.headers.index("base raw")
    assert view.headers[col - 1] == "raw" and all(len(row) == len(view.headers) for row in view.table)
    assert [row[col] for row in view.table] == pytest.approx([100 * b for b in overlay[0].y], rel=5e-3)
    assert "*base raw*: the base model without alpha" in view.stats
    assert view.figure.layout.yaxis.range[1] >= max(overlay[0].y)
    # The tuned bars differ from the base ones: the adapter is really applied.
    assert max(abs(math.log(r.raw_prob) - math.log(b)) for r, b in zip(view.rows, overlay[0].y)) > 1e-2
    # A slider move re-uses the cached base pass: no extra model call.
    calls = svc.model_calls
    distribution_view(svc, state, SamplingSettings(temperature=0.5, top_k=0), 10)
    assert svc.model_calls == calls
