"""A room on one server: each browser session runs its own adapter over the one shared model, and one
session's pick never changes what another session (the projector) sees."""

from __future__ import annotations

import threading

import pytest
import torch
from test_adapters_fixtures import logits_of, make_adapter, manager, plain_logits  # noqa: F401

from playground.adapters.library import AdapterError
from playground.adapters.session import AdapterChoice
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService

IDS = (1, 5, 9, 42, 7, 3)


def test_a_session_view_runs_its_adapter_and_leaves_the_server_default_alone(manager, tiny_llama_dir):
    store = manager.store
    base = logits_of(store)
    manager.activate("beta")  # the server's default (what the projector follows)
    beta = logits_of(store)
    revision = store.revision
    student = manager.view("alpha")
    alpha = logits_of(student)
    assert (alpha - beta).abs().max() > 1e-2 and (alpha - base).abs().max() > 1e-2
    # After the student's call the server is exactly as before: same adapter, same outputs, same revision.
    assert manager.active() == "beta" and store.current.active_adapter == "beta"
    assert torch.equal(logits_of(store), beta)
    assert store.revision == revision
    # A base-only session sees the plain base, exactly.
    assert torch.equal(logits_of(manager.view(None)), plain_logits(tiny_llama_dir))
    assert torch.allclose(logits_of(manager.view("alpha")), alpha, atol=1e-6)


def test_the_server_default_reads_the_same_during_a_session_switch(manager):
    manager.activate("beta")
    seen = []
    with manager.view("alpha").use() as lm:
        seen.append((lm.active_adapter, manager.active(), manager.store.header_markdown()))
    assert seen == [("alpha", "beta", manager.store.header_markdown())]
    assert "`beta`" in seen[0][2]


def test_decode_service_caches_never_mix_two_sessions_adapters(manager):
    svc = DecodeService(manager.store)
    settings = SamplingSettings()
    projector = svc.seen_by(None)
    student = svc.seen_by(manager.view("alpha"))
    base_dist = projector.distribution(IDS, settings, session_id="projector")
    alpha_dist = student.distribution(IDS, settings, session_id="student")
    assert not torch.allclose(base_dist.raw_probs, alpha_dist.raw_probs)
    # Asked again (now from the cache), each still gets its own adapter's distribution.
    assert torch.equal(projector.distribution(IDS, settings).raw_probs, base_dist.raw_probs)
    assert torch.equal(student.distribution(IDS, settings).raw_probs, alpha_dist.raw_probs)
    assert manager.active() is None
    # The student's view reports its own adapter (the base-vs-tuned overlay uses it), the server's does not.
    assert student.store.current.active_adapter == "alpha" and svc.store.current.active_adapter is None
    assert student.base_probs(IDS) is not None and projector.base_probs(IDS) is None


def test_interleaved_sessions_in_threads_each_get_their_own_answers(manager):
    expected = {name: logits_of(manager.view(name)) for name in ("alpha", "beta", None)}
    errors: list[str] = []

    def hammer(name):
        for _ in range(15):
            got = logits_of(manager.view(name))
            if not torch.allclose(got, expected[name], atol=1e-5):
                errors.append(f"{name} got another adapter's logits")

    threads = [threading.Thread(target=hammer, args=(n,)) for n in ("alpha", "beta", None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert manager.active() is None


def test_session_only_activation_checks_and_loads_but_changes_nothing_global(manager):
    sentence = manager.activate("alpha", session_only=True)
    assert "in this browser" in sentence and manager.active() is None
    assert "alpha" in manager.loaded_names()
    with pytest.raises(AdapterError, match="ghost"):
        manager.activate("ghost", session_only=True)


def test_a_deleted_adapter_gives_the_session_a_sentence_not_a_crash(manager):
    view = manager.view("alpha")
    logits_of(view)
    manager.delete("alpha")
    with pytest.raises(AdapterError, match="alpha"):
        logits_of(view)


def test_adapter_choice_follows_the_server_until_the_session_picks():
    follow = AdapterChoice()
    assert follow.resolve("yoda") == "yoda" and follow.resolve(None) is None
    assert follow.label("yoda") == "yoda (server default)"
    mine = AdapterChoice.pick("pirate")
    assert mine.resolve("yoda") == "pirate" and mine.label("yoda") == "pirate (this browser)"
    base = AdapterChoice.pick(None)
    assert base.resolve("yoda") is None and base.label("yoda") == "base (no adapter) (this browser)"


def test_compare_runs_the_sessions_adapter_in_the_tuned_column(manager):
    """A student's Compare turn runs the student's adapter; the server's (projector's) stays the base, and
    the same request from a browser following the server answers with the base only."""
    from playground.compare.chat import CompareRequest, CompareSettings, run_compare

    settings = CompareSettings.from_dict({"max_new_tokens": 8, "temperature": 0}, seed=3)
    manager.activate("alpha")
    server = run_compare(manager, CompareRequest("Hello", settings)).as_api()
    manager.deactivate()
    student = run_compare(manager, CompareRequest("Hello", settings, adapter=AdapterChoice.pick("alpha"))).as_api()
    assert student["adapter"] == "alpha" and student["tuned_text"] == server["tuned_text"]
    assert student["base_text"] == server["base_text"] and student["tokens"] == server["tokens"]
    projector = run_compare(manager, CompareRequest("Hello", settings)).as_api()
    assert projector["adapter"] is None and projector["tuned_text"] is None
    assert manager.active() is None


def test_inside_lens_runs_the_browsers_adapter(manager):
    from playground.inside.service import InsideService

    inside = InsideService(manager.store)
    base = inside.lens("Hello there")
    student = inside.seen_by(manager.view("alpha")).lens("Hello there")
    assert base.adapter is None and student.adapter == "alpha"
    assert [t.prob for t in student.layers[-1].top] != [t.prob for t in base.layers[-1].top]
    assert inside.lens("Hello there").adapter is None and manager.active() is None  # cached: still the base's
