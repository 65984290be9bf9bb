"""Every state is a link, without a browser: the query format (classroom/links.py) round-trips and refuses bad
values with a sentence naming the key; the ranges and defaults are the tabs' own controls; `apply_query`
(ui/links.py) rebuilds the same step-through state stepping built, on the tiny model."""

from __future__ import annotations

from urllib.parse import parse_qsl

import gradio as gr
import pytest
from test_adapters_fixtures import manager  # noqa: F401 (a fixture)

from playground.classroom.links import (
    BASE,
    COMPARE_DEFAULTS,
    DECODE_DEFAULTS,
    MAX_LINK_STEPS,
    NUMBERS,
    PageState,
    from_query,
    steps_of,
)
from playground.compare.chat import CompareSettings
from playground.compare.views import settings_note
from playground.decode.sampling import SamplingSettings
from playground.decode.steps import choose
from playground.decode.views import KNOB_NAMES, built_text_html

VOCAB = 49152
FULL = PageState(tab="decode", prompt="The rain, in  Spain & co? 🍕", chat=True, temperature=0.7, top_k=40, top_p=0.9,
                 min_p=0.05, repetition_penalty=1.3, typical_p=0.8, epsilon_cutoff=0.0003, eta_cutoff=0.001, top_h=0.4,
                 no_repeat_ngram_size=3, sequence_bias="Paris=-5, London=3", banned_words="the", seed=7, top_n=12,
                 steps=(("greedy", 450), ("sampled", 1123), ("picked", 17), ("generated", 5)), view="beam", beams=4,
                 beam_steps=6, length_penalty=-0.5, adapter="alpha", message="Hello there", c_system="Be brief.",
                 c_temperature=0.2, c_top_k=10, c_top_p=0.8, c_min_p=0.1, c_repetition_penalty=1.1,
                 c_max_new_tokens=64, c_seed=3)


def _params(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def test_a_full_state_round_trips_through_its_query():
    query = FULL.to_query()
    assert "steps=g450,s1123,p17,n5" in query and query.startswith("tab=decode&prompt=The%20rain,%20in%20%20Spain")
    assert "chat=1" in query and "top_k=40&" in query and "adapter=alpha" in query
    page, notes = from_query(_params(query), VOCAB, ["alpha"])
    assert notes == [] and page == FULL


def test_slider_floats_are_written_as_the_numbers_they_are():
    page = PageState(temperature=0.35000000000000003, top_k=50.0, seed=0, chat=False)
    assert page.to_query() == "chat=0&temperature=0.35&top_k=50&seed=0"
    assert from_query(_params(page.to_query()))[0] == PageState(temperature=0.35, top_k=50, seed=0, chat=False)


@pytest.mark.parametrize("key,value,sentence", [
    ("temperature", "9", "The link's temperature was ignored: temperature must be in [0, 2]; got '9'."),
    ("top_k", "1.5", "The link's top_k was ignored: top_k must be a whole number from 0 to 200; got '1.5'."),
    ("top_p", "0", "top_p must be in [0.01, 1]"),
    ("seed", "-1", "The link's seed was ignored: seed must be a whole number"),
    ("min_p", "nan", "min_p must be a finite number"),
    ("temperature", "hot", "temperature must be a number; got 'hot'"),
    ("c_max_new_tokens", "5000", "c_max_new_tokens must be a whole number from 1 to 1024"),
    ("c_top_p", "0.01", "c_top_p must be in [0.05, 1]"),
    ("chat", "yes", "The link's chat was ignored: chat must be 0 or 1; got 'yes'."),
    ("tab", "nowhere", "tab must be one of model, decode, inside, train, adapters, room, compare; got 'nowhere'"),
    ("view", "tree", "view must be one of next, beam, explore"),
    ("prompt", "x" * 4001, "The link's prompt was ignored: it is longer than 4,000 characters."),
    ("c_system", "y" * 2001, "The link's c_system was ignored"),
])
def test_each_bad_value_is_ignored_with_a_sentence_naming_its_key(key, value, sentence):
    page, notes = from_query({"prompt": "Hi", key: value, "top_n": "30"}, VOCAB, [])
    assert len(notes) == 1 and sentence in notes[0]
    assert getattr(page, key) is None
    assert page.top_n == 30  # the rest of the link still applies


def test_an_adapter_not_in_the_library_falls_back_to_the_base_with_its_sentence():
    page, notes = from_query({"adapter": "ghost"}, VOCAB, ["alpha"])
    assert page.adapter == BASE
    assert notes == ["The adapter 'ghost' in the link is not in this server's library; showing the base."]
    assert from_query({"adapter": "alpha"}, VOCAB, ["alpha"]) == (PageState(adapter="alpha"), [])
    assert from_query({"adapter": "base"}, VOCAB, []) == (PageState(adapter="base"), [])


def test_unknown_keys_are_named_and_other_features_keys_pass_silently():
    page, notes = from_query({"bogus": "1", "<b>x</b>": "2", "lesson": "intro", "step": "3", "presenter": "1",
                              "room": "ABCD", "temperature": "0.5"}, VOCAB, [])
    assert notes == ["Unknown link keys ignored: 'bogus', '&lt;b&gt;x&lt;/b&gt;'."]
    assert page == PageState(temperature=0.5)


@pytest.mark.parametrize("steps,sentence", [
    ("g450,s11x3", "'s11x3' is not a letter (g, s, p, n, b, m) followed by a token id, as in g450."),
    ("q12", "'q12' is not a letter"),
    ("g-1", "'g-1' is not a letter"),
    ("g450,p99999", "token id 99999 is outside this model's vocabulary of 49,152 tokens."),
    (",".join(["g1"] * (MAX_LINK_STEPS + 1)), f"more than the {MAX_LINK_STEPS} a link may hold"),
])
def test_tampered_steps_are_dropped_whole_with_a_sentence(steps, sentence):
    page, notes = from_query({"prompt": "Hi", "steps": steps, "temperature": "0.5"}, VOCAB, [])
    assert page.steps is None and page.prompt == "Hi" and page.temperature == 0.5
    assert len(notes) == 1 and notes[0].startswith("The link's steps were ignored: ") and sentence in notes[0]


def test_steps_without_a_prompt_are_ignored():
    page, notes = from_query({"steps": "g1,g2"}, VOCAB, [])
    assert page.steps is None and notes == ["The link's steps were ignored: they continue a prompt, and the link "
                                            "has none."]


def test_lesson_values_may_be_numbers_and_booleans():
    page, notes = from_query({"tab": "decode", "prompt": "Hi", "chat": True, "temperature": 0.5, "top_k": 5,
                              "c_seed": 4, "steps": ["g1", "g2,s3"]}, VOCAB, [])
    assert notes == [] and page == PageState(tab="decode", prompt="Hi", chat=True, temperature=0.5, top_k=5, c_seed=4,
                                             steps=(("greedy", 2), ("sampled", 3)))


def test_what_a_link_leaves_out_is_the_tabs_starting_value():
    page = PageState(prompt="Hi", temperature=0.5, sequence_bias="Paris=-5")
    values = page.decode_values()
    assert values["temperature"] == 0.5 and values["top_k"] == 50 and values["top_n"] == 20
    assert page.knob_values() == (0.5, 50, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0, "Paris=-5", "")
    assert page.touches_decode and not page.touches_compare and page.shown_tab == "decode"
    assert PageState(c_seed=3).shown_tab == "compare" and PageState(adapter="base").shown_tab is None
    assert PageState(c_seed=3).compare_values() == {**COMPARE_DEFAULTS, "c_seed": 3}


def _parts(tiny_store):
    from playground.services import Services
    from playground.ui import compare_tab, decode_tab, session_adapter

    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    with gr.Blocks():
        session = session_adapter.new_state()
        header, state = gr.Markdown(), gr.State(None)
        decode = decode_tab.build(services, session, header)
        compare = compare_tab.build(services, header, state, session)
    return services, decode, compare


def test_ranges_and_defaults_are_the_tabs_own_controls(tiny_store):
    _, decode, compare = _parts(tiny_store)
    sliders = dict(zip(KNOB_NAMES, decode.knobs))
    sliders.update(top_n=decode.top_n, beams=decode.beams, beam_steps=decode.beam_steps,
                   length_penalty=decode.length_penalty)
    sliders.update(zip(("c_temperature", "c_top_k", "c_top_p", "c_min_p", "c_repetition_penalty", "c_max_new_tokens"),
                       compare.settings[1:7]))
    for key, component in sliders.items():
        if key in ("sequence_bias", "banned_words"):
            assert not component.value and DECODE_DEFAULTS[key] == ""
            continue
        kind, low, high = NUMBERS[key]
        assert (component.minimum, component.maximum) == (low, high), key
        default = (COMPARE_DEFAULTS if key.startswith("c_") else DECODE_DEFAULTS)[key]
        assert component.value == pytest.approx(default), key
    assert decode.seed.value == DECODE_DEFAULTS["seed"] and compare.settings[7].value == COMPARE_DEFAULTS["c_seed"]
    assert decode.chat.value is DECODE_DEFAULTS["chat"]


def _apply(services, query, session=None):
    from playground.ui.links import COMPARE_OUTPUTS, DECODE_OUTPUTS, apply_query

    out = apply_query(services, query, session)
    assert len(out) == 3 + DECODE_OUTPUTS + COMPARE_OUTPUTS
    return out


DECODE_AT = 3  # apply_query: tabs, notes, session, then the Decode outputs (prompt, chat, 12 knobs, seed, top_n, view…)
STATE_AT = DECODE_AT + 2 + len(KNOB_NAMES) + 2


def test_apply_rebuilds_the_state_stepping_built(tiny_store):
    services, _, _ = _parts(tiny_store)
    svc = services.decode
    settings = SamplingSettings(temperature=0.7, top_k=30)
    st = choose(svc, choose(svc, _start(svc), settings, "greedy"), settings, "greedy")
    st = choose(svc, st, settings, "sampled", seed=5)
    query = _params(PageState(tab="decode", prompt="The capital of France is", chat=False, temperature=0.7, top_k=30,
                              seed=5, steps=steps_of(st.chosen), adapter="base").to_query())
    out = _apply(services, query)
    tabs, notes, session = out[:3]
    assert isinstance(tabs, gr.Tabs) and tabs.selected == "decode" and notes == ""
    assert session == {"name": None, "follow": False}
    assert out[DECODE_AT:DECODE_AT + 4] == ("The capital of France is", False, 0.7, 30)
    rebuilt = out[STATE_AT]
    assert rebuilt.chosen == st.chosen and rebuilt.ids == st.ids  # same probabilities, ranks, alternatives
    assert out[STATE_AT + 5] == built_text_html(svc.tokenizer(), st)  # the same coloured text
    assert out[-10:] == (gr.skip(),) * 10  # the Compare tab is left alone, its settings note too


def _start(svc):
    from playground.decode.session import StepState

    return StepState(prompt=svc.encode("The capital of France is", False))


def test_a_bad_link_opens_with_notes_and_the_rest_applied(tiny_store):
    services, _, _ = _parts(tiny_store)
    out = _apply(services, {"temperature": "9", "adapter": "ghost", "bogus": "1", "prompt": "Hello",
                            "steps": "g1,p99999999"}, {"name": "x", "follow": False})
    notes = out[1]
    for named in ("temperature", "'ghost'", "'bogus'", "steps"):
        assert named in notes
    assert out[2] == {"name": None, "follow": False}  # the base in this browser
    assert out[DECODE_AT + 2] == 1.0  # temperature: the tab's starting value, not 9
    assert out[STATE_AT].chosen == () and out[STATE_AT].prompt.text == "Hello"


def test_a_crafted_key_cannot_put_a_link_or_bold_text_in_the_notice(tiny_store):
    services, _, _ = _parts(tiny_store)
    notes = _apply(services, {"[Log in again](http://10.0.0.9/x)": "1", "**urgent**": "1"})[1]
    assert r"\[Log in again\]\(http://10.0.0.9/x\)" in notes and r"\*\*urgent\*\*" in notes
    assert "](" not in notes and "**" not in notes


def test_steps_past_the_context_are_dropped_and_the_prompt_shown(tiny_store):
    services, _, _ = _parts(tiny_store)
    out = _apply(services, {"prompt": "word " * 600, "steps": ",".join(["g5"] * 200)})
    assert "more than the model's context of 512 tokens" in out[1]
    assert out[STATE_AT].chosen == () and len(out[STATE_AT].ids) == 384


def test_a_link_with_an_adapter_runs_it_in_this_browser_and_the_compare_settings(manager, tiny_store):
    services, _, _ = _parts(tiny_store)
    out = _apply(services, {"tab": "compare", "adapter": "alpha", "message": "Hi", "c_temperature": "0.3",
                            "prompt": "The capital of France is"})
    assert out[1] == "" and out[2] == {"name": "alpha", "follow": False} and out[0].selected == "compare"
    assert services.adapters.active() is None  # the server's default is untouched
    table = out[STATE_AT + 3]
    assert "base raw" in table.headers  # the Decode view runs alpha (and overlays the base)
    assert out[-10:-1] == ("Hi", "", 0.3, 50, 0.95, 0.0, 1.0, 128, 0)
    # The settings note says the restored values (it is set with them, not left to their change events).
    assert out[-1] == settings_note(CompareSettings.from_dict({"temperature": 0.3}, seed=0))
    assert "temperature 0.3 · top-k 50" in out[-1]


@pytest.mark.parametrize("view", ["beam", "explore"])
def test_a_beam_or_explore_link_runs_that_view_on_open(tiny_store, view):
    from playground.ui.links import DECODE_OUTPUTS

    services, _, _ = _parts(tiny_store)
    out = _apply(services, {"prompt": "The capital of France is", "steps": "g5", "view": view, "beams": "2",
                            "beam_steps": "3"})
    decode = out[DECODE_AT:DECODE_AT + DECODE_OUTPUTS]
    views, beams, beam_steps, _lp = decode[25:29]
    summary, tree, finals, paths, pick = decode[29:34]
    sweep, multiples = decode[34:36]
    assert out[1] == "" and views.selected == f"decode-{view}" and (beams, beam_steps) == (2, 3)
    if view == "beam":
        assert "greedy" in summary.lower() and tree.data and len(finals) >= 2 and pick.choices
        assert sweep == multiples == gr.skip()
    else:
        assert summary == tree == gr.skip() and sweep.data and multiples.data
