"""Lessons as data: the bundled lesson files, the loader's sentences for broken ones, the adapter an "after
training" step falls back to, and (slow) the next-word lesson's numbers against the real bundled model."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from playground.adapters.library import AdapterInfo
from playground.classroom.lessons import (
    LESSONS_DIR,
    LessonError,
    last_good_adapter,
    load_lessons,
    parse_lesson,
    run_sentence,
    trained_adapter_pick,
)
from playground.classroom.links import PageState, from_query
from playground.train.form import request_config

PROMPT = "The rain in Spain falls mainly in the"


def check_train(recipe, quick):
    request_config(recipe, json.dumps(quick))


def bundled():
    shelf = load_lessons(LESSONS_DIR, check_train=check_train)
    assert shelf.problems == ()
    return {lesson.id: lesson for lesson in shelf.lessons}


def test_both_bundled_lessons_load_in_their_order():
    lessons = bundled()
    assert {"next_word", "pig_latin"} <= set(lessons)
    word = lessons["next_word"]
    assert word.title == "How a model picks the next word"
    assert [s.title.split(":")[0] for s in word.steps] == [
        "The model's raw probabilities", "Greedy", "Temperature", "Top-k", "Top-p", "Beam search"]
    assert all(s.tab == "decode" and s.state["prompt"] == PROMPT for s in word.steps[:5])
    assert word.steps[5].state["prompt"] == "She opened the door and saw a"  # greedy's pick leads clearly there
    assert [s.state.get("temperature") for s in word.steps[:5]] == [1.0, 0.0, 0.5, 1.0, 1.0]
    assert word.steps[3].state["top_k"] == 5 and word.steps[4].state["top_p"] == 0.5
    assert word.steps[5].state["view"] == "beam" and "0.4 × 0.9 = 0.36" in word.steps[5].say
    assert "0.6 × 0.55 = 0.33" in word.steps[5].say

    pig = lessons["pig_latin"]
    assert pig.recipe == "pig-latin" and pig.quick == {"max_steps": 30}
    assert [(s.tab, s.action, s.trained_adapter) for s in pig.steps] == [
        ("compare", "compare", False), ("train", "train", False), ("compare", "compare", True)]
    assert pig.steps[0].state["adapter"] == "base"
    assert pig.steps[0].state["message"] == pig.steps[2].state["message"]
    cfg = request_config(pig.recipe, json.dumps(pig.quick))  # the quick preset as the Train tab would run it
    assert cfg.train.max_steps == 30 and cfg.data.recipe == "pig-latin"


def test_every_step_state_is_a_valid_link():
    keys = {f.name for f in fields(PageState)}
    for lesson in bundled().values():
        for step in lesson.steps:
            assert set(step.state) <= keys, (lesson.id, step.title)
            query = step.query()
            page, notes = from_query(query, library_names=[query.get("adapter")])
            assert notes == [], (lesson.id, step.title, notes)
            assert page.shown_tab == step.tab
    pig = bundled()["pig_latin"]
    assert pig.steps[2].query("pig-latin-7")["adapter"] == "pig-latin-7"  # the picked adapter goes in the link


def _sentence(text: str, name: str = "broken.toml") -> str:
    with pytest.raises(LessonError) as err:
        parse_lesson(Path(name).stem, text, name, check_train=check_train)
    return str(err.value)


HEAD = 'title = "T"\n'


@pytest.mark.parametrize("body, expected", [
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\ntemprature = 0.5\n',
     "broken.toml, step 1 ('One'): unknown state key 'temprature'"),
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\ntemperature = "hot"\n',
     "broken.toml, step 1 ('One'): state key 'temperature' must be a number; got 'hot'."),
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\ntop_p = 1.5\n',
     "broken.toml, step 1 ('One'): state key 'top_p': top_p must be in [0.01, 1]"),
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\nchat = 1\n',
     "state key 'chat' must be true or false; got 1."),
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\ntab = "decoder"\n',
     "state key 'tab': tab must be one of model, decode"),
    ('[[steps]]\ntitle = "A"\nsay = "a."\n[[steps]]\ntitle = "B"\nsay = "b."\naction = "dance"\n',
     "broken.toml, step 2 ('B'): 'action' must be one of train, compare; got 'dance'."),
    ('[[steps]]\ntitle = "A"\nsay = "a."\naction = "train"\n',
     "broken.toml, step 1 ('A'): action = \"train\" needs a [train] table with the lesson's recipe."),
    ('[[steps]]\ntitle = "A"\nsay = "a."\naction = "compare"\n[steps.state]\ntab = "compare"\n',
     "needs a 'message' in the state to send"),
    ('[[steps]]\ntitle = "One"\nsay = "Hi."\n[steps.state]\ntemperature = 0.5\n',
     "state key 'temperature' sets the Decode tab, and the step has no 'prompt'"),
    ('[[steps]]\ntitle = "A"\n', "broken.toml, step 1: 'say' must be a non-empty text."),
    ('[[steps]]\ntitle = "A"\nsay = "a."\nsound = "on"\n', "broken.toml, step 1: unknown step key 'sound'"),
    ('colour = "red"\n[[steps]]\ntitle = "A"\nsay = "a."\n', "broken.toml: unknown key 'colour'"),
    ('', "broken.toml: a lesson needs at least one [[steps]] table."),
    ('[train]\nrecipe = "klingon"\n[[steps]]\ntitle = "A"\nsay = "a."\n',
     "broken.toml [train]: Unknown recipe 'klingon'"),
    ('[train]\nrecipe = "pig-latin"\nquick = { max_stepz = 3 }\n[[steps]]\ntitle = "A"\nsay = "a."\n',
     "broken.toml [train]: "),
    ('[train]\nrecipe = "pig-latin"\nquick = { max_steps = 2024-01-01 }\n[[steps]]\ntitle = "A"\nsay = "a."\n',
     "broken.toml [train]: Object of type date is not JSON serializable"),  # a sentence, not a failed start
])
def test_a_broken_lesson_is_one_sentence_naming_file_step_and_key(body, expected):
    assert expected in _sentence(HEAD + body)


def test_invalid_toml_and_missing_title():
    assert _sentence('title = "T\n').startswith("broken.toml is not valid TOML: ")
    assert _sentence('[[steps]]\ntitle = "A"\nsay = "a."\n') == "broken.toml: 'title' must be a non-empty text."


def test_load_lessons_lists_broken_files_and_keeps_the_good_ones(tmp_path):
    (tmp_path / "a_good.toml").write_text(HEAD + '[[steps]]\ntitle = "A"\nsay = "a."\n[steps.state]\ntab = "train"\n')
    (tmp_path / "b_bad.toml").write_text(HEAD + '[[steps]]\ntitle = "B"\nsay = "b."\n[steps.state]\nbeams = 99\n')
    (tmp_path / "notes.txt").write_text("not a lesson")
    shelf = load_lessons(tmp_path)
    assert [lesson.id for lesson in shelf.lessons] == ["a_good"]
    (problem,) = shelf.problems
    assert problem.startswith("b_bad.toml, step 1 ('B'): state key 'beams': beams must be a whole number from 1 to")
    with pytest.raises(LessonError, match="There is no lesson 'b_bad' \\(lessons: a_good\\)."):
        shelf.get("b_bad")


def _info(name, recipe="pig-latin", kind="trained", state="completed", created="2026-04-12T10:00:00+00:00",
          fingerprint="fp-base"):
    meta = {"state": state} if state is not None else {}
    return AdapterInfo(name=name, path=Path("/nowhere") / name, kind=kind, base_model="SmolLM2",
                       base_fingerprint=fingerprint, dataset={"name": recipe} if recipe else None, settings={},
                       size_bytes=1, created_at=created, meta=meta)


def test_last_good_adapter_is_the_newest_completed_one_of_the_recipe():
    infos = [
        _info("pig-latin-old", created="2026-04-10T09:00:00+00:00"),
        _info("pig-latin-0412", created="2026-04-12T09:00:00+02:00"),  # 07:00 UTC: newest completed
        _info("pig-latin-stopped", state="stopped", created="2026-04-12T11:00:00+00:00"),
        _info("yoda-new", recipe="yoda", created="2026-04-13T00:00:00+00:00"),
        _info("mix", kind="mixed", created="2026-04-13T00:00:00+00:00"),
        _info("other-base", fingerprint="fp-other", created="2026-04-14T00:00:00+00:00"),
        _info("no-dataset", recipe=None, created="2026-04-14T00:00:00+00:00"),
    ]
    assert last_good_adapter(infos, "pig-latin", "fp-base").name == "pig-latin-0412"
    assert last_good_adapter(infos, "pig-latin").name == "other-base"  # any base when none is given
    assert last_good_adapter(infos, "yoda", "fp-base").name == "yoda-new"
    assert last_good_adapter(infos, "shouty") is None
    assert last_good_adapter([], "pig-latin") is None
    older = _info("from-an-older-app", state=None, created="2026-04-15T00:00:00+00:00")  # no state recorded
    assert last_good_adapter([*infos, older], "pig-latin", "fp-base").name == "from-an-older-app"


def test_trained_adapter_pick_says_what_is_shown():
    fallback = _info("pig-latin-0412")
    done = trained_adapter_pick("completed", "pig-latin-9", fallback, "pig-latin")
    assert done.name == "pig-latin-9" and "the adapter this lesson trained on this page" in done.sentence
    going = trained_adapter_pick("training", None, fallback, "pig-latin")
    assert going.name == "pig-latin-0412"
    assert going.sentence == ("The run is still going: showing 'pig-latin-0412', the newest adapter trained from the "
                              "'pig-latin' recipe, not one this lesson trained.")
    failed = trained_adapter_pick("failed", None, fallback, "pig-latin")
    assert failed.sentence.startswith("The run failed: showing 'pig-latin-0412'")
    nothing = trained_adapter_pick("failed", None, None, "pig-latin")
    assert nothing.name is None and "no adapter of the 'pig-latin' recipe has finished yet" in nothing.sentence
    waiting = trained_adapter_pick("training", None, None, "pig-latin")
    assert waiting.name is None and "press this step again when the run ends" in waiting.sentence
    gone = trained_adapter_pick("completed", None, fallback, "pig-latin")  # its adapter deleted since
    assert gone.sentence.startswith("The adapter this lesson trained was deleted: showing 'pig-latin-0412'")
    never = trained_adapter_pick(None, None, fallback, "pig-latin")
    assert never.sentence.startswith("No run from this lesson on this page yet: showing 'pig-latin-0412'")


def test_run_sentence_follows_the_run():
    assert run_sentence("training", 12, 40, 2.345, "ancay ouyay", None) == (
        "⏳ Training: step 12/40, loss 2.35 · the probe now answers: “ancay ouyay”")
    assert run_sentence("loading", 0, 0, None, None, None) == "⏳ The run is loading…"
    assert run_sentence("completed", 40, 40, 1.9, "x", "pig-latin-2").startswith(
        "✅ Done: adapter 'pig-latin-2' after 40 steps.")
    assert "The run failed at step 7 (loss became NaN)" in run_sentence("failed", 7, 40, None, None, None,
                                                                       "loss became NaN.")


def _check_next_word_claims(store) -> None:
    """Each claim of next_word.toml against what the Decode tab computes (the same code: api_next_token)."""
    from playground.decode.beam import BeamSettings
    from playground.decode.sampling import SamplingSettings
    from playground.decode.session import DecodeService
    from playground.decode.views import api_beam_search, api_next_token

    svc = DecodeService(store)
    steps = bundled()["next_word"].steps

    def shown(step):
        knobs = {k: step.state[k] for k in ("temperature", "top_k", "top_p", "min_p", "repetition_penalty")}
        return api_next_token(svc, PROMPT, False, SamplingSettings(**knobs), 10)

    def pct(p):
        return 100 * p

    favourites = {"␣Mediterranean", "␣south", "␣north"}  # within half a point: bf16 rounding may reorder them
    raw = shown(steps[0])["rows"]
    assert {r["token"] for r in raw[:3]} == favourites and all(round(pct(r["prob"])) == 7 for r in raw[:3])
    assert all("plain" not in r["token"] for r in raw)
    greedy = shown(steps[1])["rows"]
    assert greedy[0]["token"] in favourites and greedy[0]["final_prob"] == 1.0
    assert 0 <= pct(greedy[0]["prob"] - greedy[1]["prob"]) < 0.5  # "leads by less than half a percentage point"
    if store.current.dtype == torch.float32:
        assert greedy[0]["token"] == "␣Mediterranean"  # "“Mediterranean” in full precision (fp32)"
    warm = shown(steps[2])["rows"]
    assert all(17.5 <= pct(r["after_temperature"]) < 21.5 for r in warm[:3])
    hot = api_next_token(svc, PROMPT, False, SamplingSettings(temperature=1.5, top_k=0), 3)["rows"]
    assert all(round(pct(r["after_temperature"])) == 2 for r in hot)
    top_k = shown(steps[3])
    assert top_k["kept_count"] == 5 and 28.5 <= pct(top_k["mass_kept"]) < 31.5  # "about 30 %" (bf16 on AVX512-BF16: 29.3)
    assert {r["token"] for r in top_k["rows"][:4]} == favourites | {"␣Atlantic"} and top_k["rows"][4]["token"] == "␣North"
    finals = [pct(r["final_prob"]) for r in top_k["rows"][:5]]
    assert all(19.5 <= p < 24.5 for p in finals[:4]) and 10.5 <= finals[4] < 12.5  # "about 11–12 %"
    assert 16 <= shown(steps[4])["kept_count"] <= 20  # "about 18 tokens"

    beam = steps[5].state  # its own prompt, whose greedy choice leads by about 3 points
    beam_prompt = beam["prompt"]
    first = api_next_token(svc, beam_prompt, False, SamplingSettings(top_k=0), 2)["rows"]
    assert [r["token"] for r in first] == ["␣young", "␣group"] and round(pct(first[0]["prob"])) == 15
    assert 10.5 <= pct(first[1]["prob"]) < 13.5 and pct(first[0]["prob"] - first[1]["prob"]) > 2
    after_young = api_next_token(svc, beam_prompt + " young", False, SamplingSettings(top_k=0), 1)["rows"][0]
    after_group = api_next_token(svc, beam_prompt + " group", False, SamplingSettings(top_k=0), 1)["rows"][0]
    assert (after_young["token"], round(pct(after_young["prob"]))) == ("␣woman", 38)
    assert after_group["token"] == "␣of" and round(pct(after_group["prob"])) == 99
    assert round(pct(first[0]["prob"] * after_young["prob"])) == 6  # "about 6 % together"
    together = first[1]["prob"] * after_group["prob"]
    assert 10.5 <= pct(together) < 13.5  # "11–13 % together" (bf16: 11.2 on AVX512-BF16, fp32 12.5)
    assert 1.8 <= together / (first[0]["prob"] * after_young["prob"]) < 2.4  # "about twice greedy's"
    found = api_beam_search(svc, beam_prompt, False, BeamSettings(beam["beams"], beam["beam_steps"],
                                                                  beam["length_penalty"]))
    best, greedy_path = found["sequences"][0], found["greedy"]
    assert best["text"].startswith(" group of people gathered")
    assert greedy_path["text"] == " young woman with a bright"
    assert best["probability"] > 3 * greedy_path["probability"]


@pytest.mark.slow
def test_next_word_sentences_match_the_bundled_model(bundled_store, tmp_path):
    """In fp32 (the test fixture) and in bf16 on every machine: the app's choice where the chip has native bf16,
    whose rounding differs from chip to chip (it reordered the three favourites on an Intel CPU with AMX)."""
    from conftest import BUNDLED_DATA_DIR

    from playground.model.store import LoadSettings, ModelStore

    _check_next_word_claims(bundled_store)
    bf16 = ModelStore(LoadSettings(data_dir=BUNDLED_DATA_DIR, dtype="bfloat16"))
    bf16.load()
    assert bf16.current.dtype == torch.bfloat16
    _check_next_word_claims(bf16)


@pytest.mark.slow
def test_pig_latin_before_sentence_matches_the_bundled_model(bundled_store, tmp_path):
    """'greedy, this model starts “Pig-Lad-Lad-Lad…”': the lesson's own Compare question, in fp32 and bf16."""
    from conftest import BUNDLED_DATA_DIR

    from playground.adapters.live import AdapterManager
    from playground.compare.chat import CompareRequest, CompareSettings, run_compare
    from playground.model.store import LoadSettings, ModelStore

    step = bundled()["pig_latin"].steps[0]
    assert "“Pig-Lad-Lad-Lad…”" in step.say and step.state["c_temperature"] == 0.0
    settings = CompareSettings.from_dict({"temperature": 0.0, "max_new_tokens": step.state["c_max_new_tokens"]})
    bf16 = ModelStore(LoadSettings(data_dir=BUNDLED_DATA_DIR, dtype="bfloat16"))
    bf16.load()
    for store in (bundled_store, bf16):
        answer = run_compare(AdapterManager.for_data_dir(store, tmp_path),
                             CompareRequest(step.state["message"], settings)).columns["base"].text
        assert answer.startswith("Pig-Lad-Lad-Lad"), (store.current.dtype, answer)
