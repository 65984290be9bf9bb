"""No stale results after a change: the Inside views redraw when this browser's model changes and name the prompt,
model and adapter they were computed on; a layer / head move after a prompt edit shows the new prompt; the Train
tab's preview goes when the data source changes and the adapter name follows the source unless typed; the Adapters
tab's status line follows this browser's adapter when it is deleted elsewhere.

Handlers are called directly on tabs built around the tiny Llama (2 layers, 4 heads); what they return is what
the page shows."""

from __future__ import annotations

import gradio as gr
import pytest
from test_adapters_fixtures import make_adapter

from playground.adapters.session import AdapterChoice
from playground.services import Services
from playground.ui import session_adapter as sa

PROMPT = "The capital of France is"
FOLLOW = sa.as_json(AdapterChoice())


def _pick(name: str | None) -> dict:
    return sa.as_json(AdapterChoice.pick(name))


def _handler(demo: gr.Blocks, name: str):
    found = {id(f.fn): f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name}
    assert len(found) == 1, name  # one function (a listener on several events is registered once per event)
    return next(iter(found.values()))


def _listeners(demo: gr.Blocks, trigger, writes) -> list:
    """The listeners that `trigger` (a component's event name, e.g. (session, "change")) fires writing `writes`."""
    config = demo.get_config_file()
    block, event = trigger
    return [d for d in config["dependencies"] if [block._id, event] in [list(t) for t in d["targets"]]
            and writes._id in d["outputs"]]


@pytest.fixture()
def services(tiny_store, tiny_llama_dir) -> Services:
    """The app's services with 'pig' and 'shy' adapters in the library."""
    svc = Services.create(tiny_store, tiny_store.settings.data_dir)
    lm = tiny_store.current
    for name, seed in (("pig", 1), ("shy", 2)):
        make_adapter(svc.adapters.library.root, name, tiny_llama_dir, seed=seed, base_name=lm.name,
                     fingerprint=lm.fingerprint, scale=30.0)  # strong enough to change the tiny model's answer
    return svc


@pytest.fixture()
def inside(services):
    """The Inside tab on its own with the app's two signals: (demo, session, stamp)."""
    from playground.ui import inside_tab

    with gr.Blocks() as demo:
        session, stamp = sa.new_state(), gr.State(services.stamp())
        inside_tab.build(services, session, stamp)
    return demo, session, stamp


# ---------------------------------------------------------------- Inside: a model change


def test_the_lens_is_redrawn_when_this_browser_switches_adapter(services, inside):
    """After this browser switched to an adapter the lens kept the base model's result (with no model label)
    under a header naming the adapter."""
    demo, session, stamp = inside
    on_lens, on_change = _handler(demo, "on_lens"), _handler(demo, "on_model_change")
    summary, _, _, _, drawn = on_lens(FOLLOW, PROMPT, False)
    assert "the base model (no adapter)" in summary and f"“{PROMPT}”" in summary  # every summary names its model
    assert drawn == sa.model_key(services, FOLLOW)

    out = on_change(_pick("pig"), PROMPT, False, 1, 0, drawn, "")
    lens, attention = out[:5], out[5:]
    assert "adapter **pig**" in lens[0] and "base model" not in lens[0]
    assert lens[4] == sa.model_key(services, _pick("pig"))
    assert lens[0] != summary and lens[3] != on_lens(FOLLOW, PROMPT, False)[3]  # pig's own numbers, not the base's
    assert all(isinstance(x, dict) and x.get("__type__") == "update" for x in attention)  # none shown: left alone

    # Both signals fire it: this browser's pick, and the app's stamp (the model or the server's adapter).
    lens_md = next(c for c in demo.blocks.values() if getattr(c, "elem_id", None) == "inside-lens-summary")
    assert _listeners(demo, (session, "change"), lens_md) == _listeners(demo, (stamp, "change"), lens_md) != []


def test_a_follower_redraws_when_the_servers_adapter_changes_and_not_otherwise(services, inside):
    demo, _, _ = inside
    on_lens, on_attention, on_change = (_handler(demo, n) for n in ("on_lens", "on_attention", "on_model_change"))
    lens_key = on_lens(FOLLOW, PROMPT, False)[4]
    attn_key = on_attention(FOLLOW, PROMPT, False, 2, 1)[6]
    unchanged = on_change(FOLLOW, PROMPT, False, 2, 1, lens_key, attn_key)
    assert all(isinstance(x, dict) and x.get("__type__") == "update" for x in unchanged)  # same model: no redraw

    services.adapters.activate("shy")  # the server's default, which this browser follows
    out = on_change(FOLLOW, PROMPT, False, 2, 1, lens_key, attn_key)
    assert "adapter **shy**" in out[0] and "adapter **shy**" in out[5]
    assert out[4] == out[11] == sa.model_key(services, FOLLOW) != lens_key


# ---------------------------------------------------------------- Inside: a slider after a prompt edit


def test_a_slider_moved_after_a_prompt_edit_shows_the_new_prompt(inside):
    """The layer / head sliders re-sliced the attention of the prompt shown before under the edited text."""
    demo, _, _ = inside
    on_attention, on_slice = _handler(demo, "on_attention"), _handler(demo, "on_slice")
    first = on_attention(FOLLOW, PROMPT, False, 1, 0)
    assert "“is”" in first[0] or "is”" in first[0]
    out = on_slice(FOLLOW, "1, 2, 3, 4, 5,", False, 2, 1, first[6])
    assert "“1, 2, 3, 4, 5,”" in out[0] and "layer 2 (head 1)" in out[0] and PROMPT not in out[0]
    assert "“,”" in out[0]  # the last token the sentence names is the new prompt's
    assert on_slice(FOLLOW, PROMPT, False, 2, 1, "")[0] == gr.skip()  # nothing shown yet: no model run


def test_a_slider_past_a_shallower_model_moves_the_slider_too(inside):
    """A 7th layer and 9th head are gone on the tiny model: the sliders are clamped with the figures."""
    demo, _, _ = inside
    out = _handler(demo, "on_slice")(FOLLOW, PROMPT, False, 7, 9, "drawn")
    layer, head = out[4], out[5]
    assert isinstance(layer, gr.Slider) and (layer.maximum, layer.value) == (2, 2)
    assert isinstance(head, gr.Slider) and (head.maximum, head.value) == (4, 4)


def test_the_tokens_view_is_redrawn_after_a_model_switch_and_names_the_model(inside, services):
    """The tokenizer is the base model's: a view drawn with another model's is redrawn when the app's signal
    changes; one drawn with this model, or not drawn, is left (an adapter switch changes no token)."""
    demo, _, stamp = inside
    text, lm = "Hello, tokens!", services.store.current
    drawn = _handler(demo, "on_tokens")(text)
    assert drawn[0].endswith(f" · {lm.name}") and drawn[-1] == lm.fingerprint
    on_base_change = _handler(demo, "on_base_change")
    assert on_base_change(text, lm.fingerprint) == (gr.skip(),) * 6 == on_base_change(text, "")
    redrawn = on_base_change(text, "another-model")
    assert redrawn[0] == drawn[0] and redrawn[-1] == lm.fingerprint
    assert _listeners(demo, (stamp, "change"), next(b for b in demo.blocks.values()
                                                     if getattr(b, "elem_id", None) == "inside-tok-summary"))


# ---------------------------------------------------------------- Train: a new data source


@pytest.fixture()
def train(services):
    from playground.ui import train_tab

    with gr.Blocks() as demo:
        train_tab.build(services, gr.Markdown(), gr.State(services.stamp()))
    return demo


def test_a_new_source_clears_the_preview_and_proposes_its_own_name(train):
    """Picking Shouty left pig-latin's preview; an uploaded cols.jsonl trained as "yoda-2"."""
    on_source = _handler(train, "on_source")
    summary, table, lengths, mask, mask_info, name, proposed = on_source("recipe", "shouty", None, "", "pig-latin",
                                                                         "pig-latin")
    assert "source changed" in summary and "pig-latin" not in summary
    assert table["value"] == [["Click Preview data to see the first rows."]] and lengths is None and mask is None
    assert mask_info == "" and name == proposed == "shouty"

    assert on_source("file", "yoda", None, "", "yoda", "yoda")[5:] == ("my-adapter", "my-adapter")
    assert on_source("file", "yoda", "/tmp/gradio/0a1b/cols.jsonl", "", "my-adapter", "my-adapter")[5:] == \
        ("cols", "cols")
    assert on_source("hub", "yoda", None, "someone/tiny stories", "cols", "cols")[5:] == \
        ("tiny-stories", "tiny-stories")


def test_a_name_the_user_typed_survives_a_new_source(train):
    on_source = _handler(train, "on_source")
    out = on_source("file", "yoda", "/tmp/gradio/0a1b/cols.jsonl", "", "my-own", "yoda")
    assert out[5] == gr.skip() and out[6] == "yoda"  # kept; the proposal it is compared with stays
    assert on_source("recipe", "shouty", None, "", "my-own", "yoda")[5] == gr.skip()
    assert on_source("recipe", "shouty", None, "", "  ", "yoda")[5] == "shouty"  # an emptied box is not a name
    # the same name again (an upload fires `change` twice) is not written: it could land on a name being typed
    assert on_source("file", "yoda", "/tmp/gradio/0a1b/cols.jsonl", "", "cols", "cols")[5] == gr.skip()


def test_the_recipe_pick_no_longer_writes_the_name_and_every_source_box_clears_the_preview(train):
    """One writer per event and output (test_wiring): the name is on_source's alone."""
    from playground.train.form import form_fields

    comps = {getattr(c, "elem_id", None): c for c in train.blocks.values()}
    for box in ("train-kind", "train-recipe", "train-path", "train-hub-id", "train-hub-split"):
        assert len(_listeners(train, (comps[box], "change"), comps["train-data-summary"])) == 1, box
    for box in ("train-kind", "train-recipe", "train-path"):
        assert len(_listeners(train, (comps[box], "change"), comps["train-adapter-name"])) == 1, box
    assert "adapter_name" in {f.name for f in form_fields()}


# ---------------------------------------------------------------- Adapters: deleted elsewhere


@pytest.fixture()
def app(services):
    from playground.ui.app_ui import build_app

    return build_app(services)


def test_the_status_line_follows_an_adapter_deleted_in_another_browser(services, app):
    on_activate, on_session = _handler(app, "on_activate"), _handler(app, "on_session")
    said, choice, about = on_activate("pig")
    assert "**pig** is active in this browser" in said and about == "pig"
    assert on_session(choice, about) == (gr.skip(), gr.skip())  # its own activation: the line stands

    services.adapters.delete("pig")  # another browser; app_ui's still_there sends this one back to the base
    status, about = on_session(_pick(None), about)
    assert "**pig**" in status and "deleted elsewhere" in status and "base model (no adapter)" in status
    assert "is active in this browser" not in status and about == ""


def test_the_status_line_follows_a_rename_and_leaves_other_sentences(services, app):
    on_activate, on_session = _handler(app, "on_activate"), _handler(app, "on_session")
    _, _, about = on_activate("shy")
    services.adapters.rename("shy", "shyer")
    status, about = on_session(_pick("shyer"), about)
    assert "renamed to **shyer**" in status and about == "shyer"
    assert on_session(_pick(None), None) == (gr.skip(), gr.skip())  # the line says something else (e.g. Deleted)


def test_a_proposed_name_is_the_librarys_default_name_and_always_valid():
    """source_name and an import's folder name share adapters.library.default_name, whose "a...b" used to keep
    "a..b", a name validate_name refuses."""
    from playground.adapters.library import default_name
    from playground.fsutil import validate_name
    from playground.train.form import NEUTRAL_NAME, source_name

    assert default_name("my run...v2.jsonl") == validate_name("my-run.v2.jsonl") == "my-run.v2.jsonl"
    assert source_name("file", None, "/up/a...b.jsonl", None) == "a.b"
    assert source_name("hub", None, None, "owner/da ta") == "da-ta"
    assert source_name("file", None, "", None) == NEUTRAL_NAME
    assert default_name("???") == "adapter"
