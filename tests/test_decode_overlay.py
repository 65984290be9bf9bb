"""Decode tab with an adapter active: the next-token chart overlays the base model's probabilities."""

from __future__ import annotations

import math

import pytest

from playground.decode.session import DecodeService, StepState
from playground.decode.views import distribution_view
from playground.decode.sampling import SamplingSettings
from test_adapters_fixtures import manager  # noqa: F401


def test_overlay_appears_only_with_an_adapter_and_shows_base_probabilities(manager):
    from playground.adapters.live import next_token_probs_base_vs_tuned

    svc = DecodeService(manager.store)
    state = StepState(prompt=svc.encode("The capital of France is", chat=False))
    settings = SamplingSettings(temperature=1.0, top_k=0)
    plain = distribution_view(svc, state, settings, 10)
    assert [t.name for t in plain.figure.data if t.name.startswith("base")] == []

    manager.activate("alpha")
    view = distribution_view(svc, state, settings, 10)
    overlay = [t for t in view.figure.data if t.name == "base (without alpha)"]
    assert len(overlay) == 1 and len(overlay[0].y) == 10
    base = next_token_probs_base_vs_tuned(manager.store, __import__("torch").tensor(state.ids)).base
    assert list(overlay[0].y) == pytest.approx([float(base[r.token_id]) for r in view.rows])
    # The tuned bars differ from the base ones: the adapter is really applied.
    assert max(abs(math.log(r.raw_prob) - math.log(b)) for r, b in zip(view.rows, overlay[0].y)) > 1e-2
    # A slider move re-uses the cached base pass: no extra model call.
    calls = svc.model_calls
    distribution_view(svc, state, SamplingSettings(temperature=0.5, top_k=0), 10)
    assert svc.model_calls == calls
