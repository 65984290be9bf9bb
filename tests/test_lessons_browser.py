"""The lesson bar in a real browser, on the tiny-model app: a step sets the Decode tab's state and switches to it,
Next moves on; the Pig Latin lesson asks Compare, trains the quick preset and asks the trained adapter."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS

PROMPT = "The rain in Spain falls mainly in the"
SELECTED_TAB = "document.querySelector('#pg-tabs [role=tab][aria-selected=true]')?.textContent?.trim()"


@pytest.fixture(scope="module")
def lessons_url(start_app, tiny_llama_dir, tmp_path_factory) -> str:
    return start_app("--model", str(tiny_llama_dir), data_dir=tmp_path_factory.mktemp("lessons"))


def _number(page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} input[type=number]").input_value()


def _wait_number(page, elem_id: str, value: str) -> None:
    page.wait_for_function("([id, v]) => document.querySelector(`#${id} input[type=number]`)?.value === v",
                           arg=[elem_id, value])


def _open_lesson(page, url: str, title: str) -> None:
    page.goto(url)
    page.locator("#pg-lessons").get_by_text("Lessons: guided demos").click()
    _pick_lesson(page, title)


def _pick_lesson(page, title: str) -> None:
    page.locator("#pg-lesson-pick input").click()
    page.get_by_role("option", name=title).click()
    page.locator("#pg-lesson-step-0").wait_for()


def _wait_tab(page, name: str) -> None:
    page.wait_for_function(f"{SELECTED_TAB} === '{name}'")


def _step_buttons(page) -> list[str]:
    """The labels of the step buttons on screen (a hidden one is not a button the presenter can press)."""
    buttons = page.locator("[id^=pg-lesson-step-]")
    return [buttons.nth(i).inner_text() for i in range(buttons.count()) if buttons.nth(i).is_visible()]


@pytest.mark.browser
def test_a_step_sets_the_decode_tab_and_next_moves_on(lessons_url, page):
    _open_lesson(page, lessons_url, "How a model picks the next word")
    assert page.locator("#pg-lesson-step-2").inner_text() == "3. Temperature: sharpen or flatten"
    assert "press a step, or Next to begin" in page.locator("#pg-lesson-say").inner_text()
    page.locator("#pg-lesson-step-2").click()  # the temperature step
    _wait_tab(page, "Decode")
    _wait_number(page, "decode-temperature", "0.5")
    assert page.locator("#decode-prompt textarea").input_value() == PROMPT
    assert _number(page, "decode-top-k") == "0"
    page.wait_for_selector("#decode-chart .bartext")  # the distribution for the step's state is drawn
    say = page.locator("#pg-lesson-say").inner_text()
    assert "Step 3 of 6 · Temperature: sharpen or flatten" in say and "Temperature divides the scores" in say
    assert page.locator("#pg-lesson-next").is_visible()  # the bar stays over the tabs

    page.locator("#pg-lesson-next").click()  # the top-k step
    _wait_number(page, "decode-top-k", "5")
    assert _number(page, "decode-temperature") == "1"
    page.locator("#pg-lesson-say").get_by_text("Step 4 of 6 · Top-k: only the k best").wait_for()
    page.wait_for_function("(document.querySelector('#decode-stats')?.innerText || '').includes('(5 tokens)')")
    page.screenshot(path=str(ARTIFACTS / "lessons-next-word.png"), full_page=True)

    page.locator("#pg-lesson-prev").click()  # back to temperature
    _wait_number(page, "decode-temperature", "0.5")
    _wait_number(page, "decode-top-k", "0")


@pytest.mark.browser
def test_a_link_opens_a_lesson_at_a_step(lessons_url, page):
    page.goto(f"{lessons_url}?lesson=next_word&step=5")
    _wait_tab(page, "Decode")
    _wait_number(page, "decode-top-p", "0.5")
    page.locator("#pg-lesson-say").get_by_text("Step 5 of 6 · Top-p").wait_for()
    # one button per step, as when the lesson is picked from the list; the step on screen stands out
    assert _step_buttons(page) == ["1. The model's raw probabilities", "2. Greedy: always the top token",
                                   "3. Temperature: sharpen or flatten", "4. Top-k: only the k best",
                                   "5. Top-p: the smallest set that covers p",
                                   "6. Beam search: the best sequence, not the best token"]
    assert "primary" in page.locator("#pg-lesson-step-4").get_attribute("class")


@pytest.mark.browser
def test_a_link_to_an_acting_step_shows_it_without_acting(lessons_url, page):
    """A room opening the presenter's link must not start a run per student, nor send Compare once each."""
    page.goto(f"{lessons_url}?lesson=pig_latin&step=1")
    _wait_tab(page, "Compare")
    page.locator("#pg-lesson-note").get_by_text("Opened from a link: press step 1 to send its Compare "
                                                "message.").wait_for()
    page.wait_for_timeout(1500)  # time for a send to have emptied the box
    assert page.locator("#pg-compare-input textarea").input_value().startswith("Translate to Pig Latin: Can you")
    assert page.locator("#pg-compare-base .user").count() == 0
    page.locator("#pg-lesson-step-0").click()  # the step the note names is a button, and pressing it acts
    page.locator("#pg-compare-base .user").get_by_text("Translate to Pig Latin: Can you").wait_for(timeout=60_000)
    page.goto(f"{lessons_url}?lesson=pig_latin&step=2")
    _wait_tab(page, "Train")
    page.locator("#pg-lesson-note").get_by_text("Opened from a link: press step 2 to start its training "
                                                "run.").wait_for()
    assert "Started run" not in page.locator("#pg-lesson-note").inner_text()
    # the note's "press step 2" names a button that is there to press
    assert _step_buttons(page) == ["1. Before: the base model", "2. Train: 30 quick steps",
                                   "3. After: the same question, tuned"]


@pytest.mark.browser
def test_pig_latin_before_train_after(lessons_url, page):
    """Then, on the same page, the next-word lesson switches back to the base model (and says so), and a fresh
    page's "after" step names the run it shows as another page's."""
    _open_lesson(page, lessons_url, "Teach it Pig Latin")
    page.locator("#pg-lesson-step-2").click()  # "after" before any run: says so, asks nothing
    page.locator("#pg-lesson-note").get_by_text("No run from this lesson on this page yet, and no adapter of the "
                                                "'pig-latin' recipe has finished yet").wait_for()

    page.locator("#pg-lesson-step-0").click()  # before: Compare, base model, the message sent
    _wait_tab(page, "Compare")
    # The step set the message and pressed Send (which empties the box), so the message shows as the user's turn
    page.locator("#pg-compare-base .user").get_by_text("Translate to Pig Latin: Can you").wait_for(timeout=60_000)
    assert page.locator("#pg-compare-input textarea").input_value() == ""
    page.locator("#pg-compare-base .bot").first.wait_for(timeout=120_000)

    page.locator("#pg-lesson-next").click()  # train: the quick preset starts, the bar follows it
    _wait_tab(page, "Train")
    page.locator("#pg-lesson-note").get_by_text("Started run").wait_for()
    page.locator("#pg-lesson-live").get_by_text("Done: adapter 'pig-latin'").wait_for(timeout=240_000)
    assert "after 30 steps" in page.locator("#pg-lesson-live").inner_text()

    page.locator("#pg-lesson-next").click()  # after: the adapter just trained, asked the same question
    _wait_tab(page, "Compare")
    page.locator("#pg-lesson-note").get_by_text("Showing 'pig-latin', the adapter this lesson trained on this page "
                                                "(run ").wait_for()
    page.locator("#pg-model-badge").get_by_text("pig-latin").wait_for()
    page.locator("#pg-compare-tuned .bot").first.wait_for(timeout=120_000)
    page.wait_for_selector("#pg-compare-diff .pg-tok", timeout=120_000)  # the "what changed" colouring
    assert page.locator("#pg-compare-base .bot").count() == 1  # a fresh conversation, not a second turn
    page.screenshot(path=str(ARTIFACTS / "lessons-pig-latin.png"), full_page=True)

    # This page now runs 'pig-latin': the next-word lesson quotes the base model's numbers, so it runs on the base
    # and says that it switched this page to it.
    _pick_lesson(page, "How a model picks the next word")
    page.locator("#pg-lesson-step-3").click()  # top-k: "about 30 % of the probability"
    page.locator("#pg-lesson-note").get_by_text("This step runs on the base model, so this page now uses it instead "
                                                "of the adapter 'pig-latin'").wait_for()
    page.wait_for_function("!document.querySelector('#pg-model-badge').innerText.includes('pig-latin')")

    # A page that trained nothing (a reload, a student's link) is shown the recipe's newest adapter, named as
    # another page's run, not "the adapter this lesson just trained".
    page.goto(f"{lessons_url}?lesson=pig_latin&step=3")
    _wait_tab(page, "Compare")
    note = page.locator("#pg-lesson-note")
    note.get_by_text("No run from this lesson on this page yet: showing 'pig-latin").wait_for()
    text = note.inner_text()
    assert "the newest adapter trained from the 'pig-latin' recipe (run " in text
    assert "30 steps, started on another page), not one this lesson trained." in text
    assert "this lesson trained on this page" not in text and "just trained" not in text
