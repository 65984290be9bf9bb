"""How the built app's events are wired, read from its config: two listeners fired by the same event and
writing the same component run side by side (Gradio runs up to 64 calls per listener at once), and whichever
finishes last is what the page shows. Such races left the Decode table, the Train tab's parameter count and the
Adapters picker on stale values, so each output has one writer per event."""

from __future__ import annotations

from collections import defaultdict

import pytest


@pytest.fixture()
def config(tiny_store):
    from playground.services import Services
    from playground.ui.app_ui import build_app

    return build_app(Services.create(tiny_store, tiny_store.settings.data_dir)).get_config_file()


def test_no_event_has_two_listeners_writing_the_same_component(config):
    """Page load is the exception by design: the link, lesson and room openers each write only what their own
    query keys name (ui/links.py, ui/lessons_tab.py, ui/room_tab.py) and skip the rest."""
    names = {c["id"]: c["props"].get("elem_id") or c["props"].get("label") or c["type"]
             for c in config["components"]}
    writers = defaultdict(lambda: defaultdict(list))  # (component, event) -> output -> listeners
    for i, dep in enumerate(config["dependencies"]):
        for block, event in dep["targets"]:
            if block is not None and event != "load":  # None: a `.then` step, which runs after its own event
                for out in dep["outputs"]:
                    writers[(block, event)][out].append(i)
    clashes = [f"{names.get(block)}.{event} -> {names.get(out)} (listeners {deps})"
               for (block, event), outs in writers.items() for out, deps in outs.items() if len(deps) > 1]
    assert clashes == []


# The Decode tab's knobs (KNOB_NAMES order, then "tokens shown"): the words boxes are the last two.
DECODE_SLIDERS = ("decode-temperature", "decode-top-k", "decode-top-p", "decode-min-p", "decode-penalty",
                  "decode-typical", "decode-epsilon", "decode-eta", "decode-top-h", "decode-no-repeat", "decode-top-n")
DECODE_WORDS = ("decode-bias", "decode-banned")


def test_a_link_setting_the_decode_knobs_fires_no_refilter_of_its_own(config):
    """A link (or a lesson step) sets every knob in one update and draws the view itself. A per-knob `change`
    listener fired once per knob with the later knobs not yet applied, and the half-applied call finishing last
    left the table on the wrong settings (seen on CI). So only the user's own edits re-filter, through one
    listener whose "always_last" keeps two quick edits in order."""
    from playground.decode.views import KNOB_NAMES

    assert len(DECODE_SLIDERS) + len(DECODE_WORDS) == len(KNOB_NAMES) + 1
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    sliders, words = {ids[e] for e in DECODE_SLIDERS}, {ids[e] for e in DECODE_WORDS}
    on_knobs = [d for d in config["dependencies"] if {t[0] for t in d["targets"]} & (sliders | words)]
    assert len(on_knobs) == 1, "one listener for every knob"
    (refilter,) = on_knobs
    assert {tuple(t) for t in refilter["targets"]} == {*((i, "input") for i in sliders),
                                                        *((i, e) for i in words for e in ("submit", "blur"))}
    assert refilter["trigger_mode"] == "always_last"


# The Train tab's boxes the count depends on (LoRA shape, quantization, memory); each must trigger the recount.
COUNTED = ("train-r", "train-lora-alpha", "train-target-modules", "train-use-dora", "train-bias",
           "train-quantization", "train-batch-size", "train-max-seq-length", "train-gradient-checkpointing",
           "train-optimizer", "train-recipe")


def test_the_parameter_count_follows_every_box_through_one_ordered_listener(config):
    """A recipe pick sets many boxes at once: one "always_last" listener draws the last values last."""
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    recounts = [d for d in config["dependencies"] if ids["train-params"] in d["outputs"]]
    assert len(recounts) == 1, "one listener writes the count"
    (recount,) = recounts
    assert recount["trigger_mode"] == "always_last"
    targets = {tuple(t) for t in recount["targets"]}
    assert {(ids[e], "change") for e in COUNTED} <= targets
    assert any(event == "load" for _, event in targets)  # a fresh page shows the count too
    # a preview redraws it: GRPO's memory estimate counts a hub dataset's prompts once the preview has read them
    assert (ids["train-data-summary"], "change") in targets
