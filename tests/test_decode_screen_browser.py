"""The Decode tab's step buttons and labels in a real browser, as a learner meets them: Greedy before any
distribution, after a prompt edit and with an empty prompt (a sentence, never "Error" marks over the views), the
stats' mass kept against the waterfall's, and the beam view saying which settings it ignores."""

from __future__ import annotations

import re

import pytest
from conftest import ARTIFACTS
from conftest import set_slider as _set

VIEWS = ["#decode-chart", "#decode-table", "#decode-candidates", "#decode-text", "#decode-waterfall"]
# The views showing Gradio's "Error" mark (a failed event puts one over each of its outputs).
ERROR_MARKS_JS = """sels => sels.filter(s => [...document.querySelectorAll(s + ' *')].some(
    e => e.children.length === 0 && e.textContent.trim() === 'Error' && e.checkVisibility()))"""
IDLE_JS = "() => ![...document.querySelectorAll('.progress-text')].some(e => e.checkVisibility())"


def _tokens(page, n: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('#decode-text .pg-tok').length === n", arg=n)


def _notice(page) -> str:
    return page.locator("#decode-notice").inner_text().strip()


def _shown_prompt(page) -> str:
    return page.locator("#decode-text [title=prompt]").inner_text()


def _greedy(page) -> None:
    page.locator("#decode-greedy").click()
    page.wait_for_timeout(300)  # the event starts
    page.wait_for_function(IDLE_JS)


@pytest.mark.browser
def test_greedy_steps_from_the_prompt_box_and_an_empty_prompt_is_a_sentence(app_url, page):
    page.goto(app_url)
    page.get_by_role("tab", name="Decode").click()
    prompt = page.locator("#decode-prompt textarea")
    assert prompt.input_value() == "The rain in Spain falls mainly in the"
    # a fresh page: Greedy before "Show next-token distribution" steps from the prompt shown
    _greedy(page)
    _tokens(page, 1)
    page.wait_for_selector("#decode-chart .bartext")
    assert page.evaluate(ERROR_MARKS_JS, VIEWS) == [] and _notice(page) == ""
    assert _shown_prompt(page) == "The rain in Spain falls mainly in the"
    assert "Entropy" in page.locator("#decode-stats").inner_text()

    # an edited prompt: the next step starts from it, and the notice says what was dropped
    prompt.fill("My favourite colour is")
    _greedy(page)
    page.wait_for_function("() => document.querySelector('#decode-text [title=prompt]')?.innerText === "
                           "'My favourite colour is'")
    _tokens(page, 1)
    assert "Spain" not in page.locator("#decode-text").inner_text()
    assert _notice(page) == ("The prompt was edited: this starts from the prompt “My favourite colour is” as it is "
                             "now; the 1 token chosen after “The rain in Spain falls mainly in the” was dropped.")
    page.screenshot(path=str(ARTIFACTS / "decode-edited-prompt.png"), full_page=True)

    # an empty prompt: a sentence in the notice line, no numbers of the old prompt left as if current
    prompt.fill("")
    _greedy(page)
    page.wait_for_function("() => document.querySelector('#decode-notice').innerText.includes('empty')")
    assert _notice(page) == "⚠️ The prompt is empty: type some text first."
    assert page.evaluate(ERROR_MARKS_JS, VIEWS + ["#decode-stats"]) == []
    assert page.locator("#decode-stats").inner_text().strip() == ""
    assert page.locator("#decode-text .pg-tok").count() == 0 and page.locator("#decode-chart .bartext").count() == 0
    page.screenshot(path=str(ARTIFACTS / "decode-empty-prompt.png"), full_page=True)


@pytest.mark.browser
def test_mass_kept_names_its_basis_and_beam_says_what_it_ignores(app_url, page):
    page.goto(app_url)
    page.get_by_role("tab", name="Decode").click()
    page.locator("#decode-example-1").click()  # "The capital of France is"
    page.wait_for_selector("#decode-chart .bartext")
    _set(page, "decode-temperature", 1.5)
    _set(page, "decode-top-p", 0.5)
    page.wait_for_function("() => (document.querySelector('#decode-chart .gtitle') || {}).textContent"
                           " === 'Next-token probabilities · T=1.5, top-k 50, top-p 0.5'")
    page.wait_for_function(IDLE_JS)
    stats = page.locator("#decode-stats").inner_text()
    assert re.search(r"Entropy: [\d.]+ bits, of the final distribution \(after filters\)", stats)
    tempered, raw = re.search(r"Probability mass kept: ([\d.]+) % of the distribution after temperature · "
                              r"([\d.]+) % of the raw probability", stats).groups()
    heads = page.locator("#decode-waterfall .annotation").all_text_contents()
    last = [h for h in heads if "of the raw probability" in h][-1]  # the last stage: what is finally kept
    assert f"{raw}% of the raw probability" in last and tempered != raw

    page.get_by_role("tab", name="Beam search").click()
    said = "temperature, top-k, top-p, min-p, repetition penalty and More samplers are not applied"
    assert said in page.locator("#decode-views").inner_text()  # before any run
    _set(page, "decode-beams", 2)
    _set(page, "decode-steps", 2)
    page.locator("#decode-run-beam").click()
    page.wait_for_selector("#decode-tree .annotation")
    assert said in page.locator("#decode-beam-summary").inner_text()
    assert page.locator("#decode-finals [role=gridcell][data-row='0']").first.inner_text().strip() == "1 = greedy"
