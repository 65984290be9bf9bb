"""The step-through buttons and the tab's glue, without Gradio's event loop: pick / sample / greedy, generate N,
which text beam search continues, the settings wrapper, and the one shared Cancel."""

from __future__ import annotations

import threading

import pytest
import torch

from playground.decode.sampling import SamplingSettings, greedy_token, sample_token
from playground.decode.session import DecodeService, StepState
from playground.decode.steps import choose, for_current_model, generate_states, state_for_prompt


@pytest.fixture()
def svc(tiny_store):
    return DecodeService(tiny_store)


def test_state_for_prompt_continues_the_built_text_only_for_the_same_box(svc):
    st = StepState(prompt=svc.encode("Once upon a time", False))
    st = choose(svc, st, SamplingSettings(), "greedy")
    assert state_for_prompt(svc, st, "Once upon a time", False) is st
    fresh = state_for_prompt(svc, st, "Once upon a time", True)  # chat flag changed: a new prompt
    assert fresh.chosen == () and fresh.prompt.chat
    assert state_for_prompt(svc, None, "Hello", False).prompt.text == "Hello"
    with pytest.raises(ValueError, match="empty"):
        state_for_prompt(svc, None, "  ", False)


def test_after_a_model_switch_the_old_token_ids_are_not_fed_as_other_text(svc):
    """Ids made by another model's tokenizer would read as other words: the prompt is tokenized again (the Decode
    tab redraws through this on the app's change signal; beam search and the comparison continue through it)."""
    from dataclasses import replace

    st = choose(svc, StepState(prompt=svc.encode("Once upon a time", False)), SamplingSettings(), "greedy")
    assert for_current_model(svc, st) == (st, "")  # same tokenizer (an adapter change): everything kept
    other = replace(st, prompt=replace(st.prompt, ids=(261, 300, 291, 297)))  # as another tokenizer made them
    again, note = for_current_model(svc, other)
    assert again.ids == svc.encode("Once upon a time", False).ids and again.chosen == ()
    assert note == ("The model changed: the prompt was tokenized again for it; the 1 token chosen under the "
                    "previous model dropped.")
    assert state_for_prompt(svc, other, "Once upon a time", False).ids == again.ids
    beyond = replace(st.chosen[0], token_id=len(svc.tokenizer()) + 5)  # a token this vocabulary lacks
    assert for_current_model(svc, replace(st, chosen=(beyond,)))[0].chosen == ()


def test_choose_picks_samples_and_takes_the_argmax(svc):
    settings = SamplingSettings(temperature=0.9, top_k=20)
    st = StepState(prompt=svc.encode("The rain in Spain", False))
    dist = svc.distribution(st.ids, settings, st.session_id)
    picked = choose(svc, st, settings, "picked", float(dist.order[3]))  # the radio may send floats
    assert picked.chosen[-1].token_id == int(dist.order[3]) and picked.chosen[-1].how == "picked"
    sampled = choose(svc, st, settings, "sampled", seed=7)
    assert sampled.chosen[-1].token_id == sample_token(dist, 7, 0)
    greedy = choose(svc, st, settings, "greedy")
    assert greedy.chosen[-1].token_id == greedy_token(dist) and len(greedy.chosen) == 1
    with pytest.raises(ValueError, match="first"):
        choose(svc, None, settings, "greedy")
    with pytest.raises(ValueError, match="seed"):
        choose(svc, st, settings, "sampled", seed=-1)
    with pytest.raises(ValueError, match="token id"):
        choose(svc, st, settings, "picked", 10**9)


def test_generate_states_grow_token_by_token(svc):
    st = StepState(prompt=svc.encode("Hello", False))
    states = list(generate_states(svc, st, SamplingSettings(temperature=0), 6, 0))
    assert [len(s.chosen) for s in states][-1] == 6 and all(s.prompt == st.prompt for s in states)
    assert all(len(a.chosen) <= len(b.chosen) for a, b in zip(states, states[1:]))
    with pytest.raises(ValueError, match="N must be"):
        next(generate_states(svc, st, SamplingSettings(), 0, 0))
    with pytest.raises(ValueError, match="first"):
        next(generate_states(svc, None, SamplingSettings(), 3, 0))


def test_with_settings_builds_one_settings_object_and_turns_mistakes_into_warnings(monkeypatch):
    import gradio as gr

    from playground.ui.decode_handlers import KNOBS, settings_wrapper

    from types import SimpleNamespace

    # A browser that follows the server gets the server's DecodeService (here None: no words typed, so no
    # tokenizer is needed); the choice is the first input of every knob handler.
    services = SimpleNamespace(decode=SimpleNamespace(seen_by=lambda view: None),
                               rooms=SimpleNamespace(presenting=lambda session: False))  # no room: no presenter
    with_settings = settings_wrapper(services)
    more_off = (1.0, 0.0, 0.0, 0.0, 0, "", "")  # typical, ε, η, top-h, n-gram, bias, banned words
    assert KNOBS == 5 + len(more_off)
    seen = []

    @with_settings
    def handler(svc, settings, st, n):
        seen.append((svc, settings, st, n))
        return n

    assert handler(None, 0.7, 40.0, 0.9, 0.0, 1.0, *more_off, "state", 20) == 20
    assert seen == [(None, SamplingSettings(0.7, 40, 0.9, 0.0, 1.0), "state", 20)]

    @with_settings
    def stream(svc, settings, count):
        yield from range(count)

    assert list(stream(None, 1.0, 50, 1.0, 0.0, 1.0, *more_off, 3)) == [0, 1, 2]
    # a mistake is a toast naming the field, and one gr.skip() leaves every view as it was (no "Error" marks)
    said = []
    monkeypatch.setattr(gr, "Warning", lambda message, *a, **k: said.append(message))
    assert handler(None, 1.0, 50, 1.5, 0.0, 1.0, *more_off, None, 5) == gr.skip()
    assert list(stream(None, -1, 50, 1.0, 0.0, 1.0, *more_off, 3)) == [gr.skip()]
    assert handler(None, None, 50, 1.0, 0.0, 1.0, *more_off, None, 5) == gr.skip()  # an emptied box
    assert handler(None, 1.0, 50, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0, "", "", None, 5) == gr.skip()
    assert said[0] == "top_p must be in (0, 1] (1 = off); got 1.5." and "temperature" in said[1]
    assert "temperature" in said[2] and said[3] == "eta_cutoff must be in [0, 1) (0 = off); got 1.0."


def test_decode_tab_builds_no_service_of_its_own():
    import inspect

    from playground.ui import decode_tab

    source = inspect.getsource(decode_tab)
    assert "DecodeService(" not in source and "services.decode" in source


def test_one_cancel_for_decode_and_compare():
    from playground.compare import chat
    from playground.decode import stream
    from playground.decode.cancel import Cancel

    assert chat.Cancel is Cancel and stream.Cancel is Cancel
    assert not hasattr(chat, "_Cancel") and not hasattr(stream, "_Cancel")
    event = threading.Event()
    cancel = Cancel(event)
    ids = torch.zeros((2, 3), dtype=torch.long)
    assert cancel(ids, None).tolist() == [False, False]
    event.set()
    assert cancel(ids, None).tolist() == [True, True]
    assert Cancel().event is not None
