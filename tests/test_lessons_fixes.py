"""Lessons say only what is true on screen: a step quoting the base model's numbers runs on the base model (and
says so when it switches this page), and the "after training" step never calls someone else's run the lesson's."""

from __future__ import annotations

import re
from pathlib import Path

from playground.adapters.library import AdapterInfo
from playground.classroom.lessons import (
    LESSONS_DIR,
    load_lessons,
    parse_lesson,
    switch_sentence,
    trained_adapter_pick,
)
from playground.train.panel import Starter
from playground.ui.lessons_tab import check_train, run_steps, who_started

HEAD = 'title = "T"\n'


def _bundled():
    shelf = load_lessons(LESSONS_DIR, check_train=check_train)
    assert shelf.problems == ()
    return {lesson.id: lesson for lesson in shelf.lessons}


def _shows_output(state: dict) -> bool:
    return "prompt" in state or "message" in state


def test_next_word_steps_run_on_the_base_model():
    """Its sentences quote the base model ("about 30 %", "about 18 tokens"): another adapter would contradict them."""
    steps = _bundled()["next_word"].steps
    assert [s.tab for s in steps] == ["decode"] * 6
    assert [s.query()["adapter"] for s in steps] == ["base"] * 6


def test_every_step_that_cites_numbers_over_model_output_names_its_model():
    """The guard: a sentence with a number about what the model shows holds for one model only, so that model is
    named (or the step shows the lesson's trained adapter, whose sentence is conditional)."""
    for lesson in _bundled().values():
        for step in lesson.steps:
            if re.search(r"\d", step.say) and _shows_output(step.state):
                assert step.trained_adapter or step.query().get("adapter"), (lesson.id, step.title)


def test_a_step_showing_model_output_defaults_to_the_base_model():
    body = (HEAD + '[[steps]]\ntitle = "A"\nsay = "a."\n[steps.state]\ntab = "decode"\nprompt = "Hi"\n'
            '[[steps]]\ntitle = "B"\nsay = "b."\n[steps.state]\ntab = "compare"\nmessage = "Hi"\n'
            '[[steps]]\ntitle = "C"\nsay = "c."\n[steps.state]\nprompt = "Hi"\nadapter = "shouty"\n'
            '[[steps]]\ntitle = "D"\nsay = "d."\n[steps.state]\ntab = "train"\n')
    a, b, c, d = parse_lesson("t", body).steps
    assert a.query()["adapter"] == "base" and b.query()["adapter"] == "base"
    assert c.query()["adapter"] == "shouty"  # a step that names one keeps it
    assert "adapter" not in d.query()  # shows no model output: this page's adapter is left alone


def test_switching_this_pages_adapter_is_said():
    assert switch_sentence("shouty", None) == (
        "This step runs on the base model, so this page now uses it instead of the adapter 'shouty' (the header "
        "names the model in use; the Adapters tab switches back).")
    assert switch_sentence(None, "pig-latin").startswith("This step runs on the adapter 'pig-latin', so this page "
                                                          "now uses it instead of the base model")
    assert switch_sentence(None, None) == "" and switch_sentence("x", "x") == ""


def _info(name: str, run_id: str | None, steps: int | None) -> AdapterInfo:
    meta = {"state": "completed", "run_id": run_id, "steps": steps}
    return AdapterInfo(name=name, path=Path("/nowhere") / name, kind="trained", base_model="SmolLM2",
                       base_fingerprint="fp", dataset={"name": "pig-latin"}, settings={}, size_bytes=1,
                       created_at="2026-04-12T10:00:00+00:00", meta=meta)


def test_the_after_step_names_someone_elses_run_as_such():
    """The browser walk: this page trained nothing, another browser's 5-step manual run was the newest."""
    other = _info("pig-latin", "20260412-100000-pig-latin", 5)
    pick = trained_adapter_pick(None, None, other, "pig-latin", lesson_steps=30, started="started on another page")
    assert pick.name == "pig-latin"
    assert pick.sentence == (
        "No run from this lesson on this page yet: showing 'pig-latin', the newest adapter trained from the "
        "'pig-latin' recipe (run 20260412-100000-pig-latin, 5 steps, started on another page), not one this lesson "
        "trained. It trained only 5 steps, fewer than this lesson's 30: its answer may not show what the recipe "
        "teaches yet.")
    assert "just trained" not in pick.sentence
    full = trained_adapter_pick("training", None, _info("pig-latin-2", "r2", 220), "pig-latin", lesson_steps=30)
    assert full.sentence == ("The run is still going: showing 'pig-latin-2', the newest adapter trained from the "
                             "'pig-latin' recipe (run r2, 220 steps), not one this lesson trained.")


def test_the_after_step_says_this_lesson_trained_only_its_own_run():
    own = trained_adapter_pick("completed", "pig-latin-3", _info("x", "r", 30), "pig-latin", run_id="r3",
                               run_steps=30, lesson_steps=30)
    assert (own.name, own.sentence) == ("pig-latin-3", "Showing 'pig-latin-3', the adapter this lesson trained on "
                                                       "this page (run r3, 30 steps).")


def test_the_after_sentence_does_not_promise_pig_latin():
    """The adapter shown may be short or someone else's: the step may not claim its answer "now sounds like" it."""
    after = _bundled()["pig_latin"].steps[2]
    assert after.trained_adapter and "now sounds like" not in after.say
    assert "should start to sound like Pig Latin" in after.say and "if it still reads as English" in after.say


def test_who_started_a_run_as_this_page_can_know_it():
    me = Starter.of(None, "this-page")
    assert who_started(me, {"user": None, "session": me.session}) == "started on this page"
    assert who_started(me, {"user": None, "session": "abc"}) == "started on another page"  # or before a reload
    assert who_started(Starter.of("ana", "s"), {"user": "bo", "session": "x"}) == "started by bo"
    assert who_started(Starter.of("ana", "s"), {"user": "ana", "session": "x"}) == "started by you"
    assert who_started(me, {}) == ""


def test_run_steps_is_the_lessons_quick_preset():
    lessons = _bundled()
    assert run_steps(lessons["pig_latin"]) == 30
    assert run_steps(lessons["next_word"]) is None  # no [train] table
