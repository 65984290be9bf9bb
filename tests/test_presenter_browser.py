"""Presenter mode in a real browser: `--presenter`, `?presenter=1|0` and the header's checkbox; large type and the
advanced controls folded away; the Decode tab's keys; the distribution chart animating between states.
On an app of its own (`--presenter`, the tiny random Llama: fast)."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from test_decode_browser import BROKEN_CELLS_JS

EXAMPLE_0, EXAMPLE_1 = "The rain in Spain falls mainly in the", "The capital of France is"

FONT_SIZES_JS = """() => { const px = s => parseFloat(getComputedStyle(document.querySelector(s)).fontSize);
  return [px('#pg-model-badge p'), px('#decode-prompt textarea')]; }"""
# Every animation frame for `ms`, the pixel height of the first bar of: the distribution's "final" trace (the
# top-ranked token) and the waterfall's third bar trace (the temperature row's kept bars).
SAMPLE_BARS_JS = """(ms) => { window.pgBars = [[], []]; const t0 = performance.now();
  const height = (sel, i) => { const t = document.querySelectorAll(sel + ' g.trace.bars')[i];
    const path = t && t.querySelector('path'); return path ? path.getBBox().height : null; };
  const tick = () => {
    [height('#decode-chart', 1), height('#decode-waterfall', 2)].forEach((h, i) => {
      if (h !== null) window.pgBars[i].push(h); });
    if (performance.now() - t0 < ms) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick); }"""


@pytest.fixture(scope="module")
def presenter_url(start_app, tiny_llama_dir, tmp_path_factory) -> str:
    return start_app("--model", str(tiny_llama_dir), "--presenter", data_dir=tmp_path_factory.mktemp("presenter"))


def _is_on(page) -> bool:
    return page.evaluate("document.documentElement.classList.contains('pg-presenter')")


def _open(page, url: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name="Decode").click()
    page.wait_for_selector("#decode-prompt textarea")


def _tokens(page) -> int:
    return page.locator("#decode-text .pg-tok").count()


def _wait_tokens(page, n: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('#decode-text .pg-tok').length === n", arg=n)


def _set(page, elem_id: str, value) -> None:
    number = page.locator(f"#{elem_id} input[type=number]")
    number.fill(str(value))
    number.press("Enter")


def _wait_title(page, text: str) -> None:
    page.wait_for_function("t => ((document.querySelector('#decode-chart .gtitle') || {}).textContent || '')"
                           ".includes(t)", arg=text)


@pytest.mark.browser
def test_flag_url_and_toggle_switch_large_type_and_fold_advanced_controls(presenter_url, page):
    _open(page, presenter_url + "?presenter=0")  # the URL wins over --presenter
    page.wait_for_function("() => !document.querySelector('#pg-presenter-toggle input').checked")
    assert not _is_on(page)
    badge, prompt = page.evaluate(FONT_SIZES_JS)
    assert page.locator("#decode-more").is_visible() and page.locator("#decode-seed").is_visible()
    assert not page.locator("#pg-keys").is_visible()

    _open(page, presenter_url + "?presenter=1")
    assert _is_on(page)
    page.wait_for_function("document.querySelector('#pg-presenter-toggle input').checked")
    big_badge, big_prompt = page.evaluate(FONT_SIZES_JS)
    assert big_badge >= 1.3 * badge and big_prompt >= 1.3 * prompt
    for folded in ("#decode-more", "#decode-template-box", "#decode-top-n", "#decode-seed"):
        assert not page.locator(folded).is_visible(), folded
    assert page.locator("#decode-temperature").is_visible()  # the main knobs stay
    keys = page.locator("#pg-keys")
    keys.wait_for()
    assert keys.is_visible() and "greedy step" in keys.inner_text() and "next example" in keys.inner_text()
    page.screenshot(path=str(ARTIFACTS / "presenter.png"), full_page=True)
    page.get_by_role("tab", name="Compare").click()  # the keys are the Decode tab's: they go with it
    page.wait_for_function("!document.querySelector('#pg-keys').checkVisibility()")
    page.get_by_role("tab", name="Decode").click()
    keys.wait_for()

    page.locator("#pg-presenter-toggle input").click()  # the header's checkbox turns it off in this page
    page.wait_for_function("!document.documentElement.classList.contains('pg-presenter')")
    assert page.locator("#decode-more").is_visible() and not keys.is_visible()
    assert page.evaluate(FONT_SIZES_JS) == [badge, prompt]

    _open(page, presenter_url)  # no parameter: the server's --presenter
    assert _is_on(page)
    page.wait_for_function("document.querySelector('#pg-presenter-toggle input').checked")


@pytest.mark.browser
def test_keys_step_undo_reset_and_walk_the_examples_but_not_while_typing(presenter_url, page):
    _open(page, presenter_url + "?presenter=1")
    page.locator("#decode-run").click()
    page.wait_for_selector("#decode-chart .bartext")
    page.wait_for_selector("#decode-table [role=gridcell]")
    assert page.evaluate(BROKEN_CELLS_JS, "#decode-table") == []  # the table fits its large type (under the chart)
    assert _tokens(page) == 0
    # Each key, then the number of chosen tokens it must leave in the text.
    for key, tokens in (("g", 1), ("g", 2), ("u", 1), ("Backspace", 0), ("s", 1), ("r", 0)):
        page.keyboard.press(key)
        _wait_tokens(page, tokens)

    box = page.locator("#decode-prompt textarea")
    box.click()
    box.press("End")
    page.keyboard.type("g")  # a letter typed in the prompt is text, not a step
    assert box.input_value() == EXAMPLE_0 + "g"
    page.wait_for_timeout(1500)
    assert _tokens(page) == 0 and "Click a candidate" in page.locator("#decode-text").inner_text()

    page.locator("#decode-run").focus()  # out of the text box: the keys work again
    page.keyboard.press("ArrowRight")
    page.wait_for_function("t => document.querySelector('#decode-prompt textarea').value === t", arg=EXAMPLE_1)
    page.keyboard.press("n")
    page.wait_for_function("t => document.querySelector('#decode-prompt textarea').value.startsWith(t)",
                           arg="Once upon a time")
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("t => document.querySelector('#decode-prompt textarea').value === t", arg=EXAMPLE_1)
    page.keyboard.press("p")
    page.wait_for_function("t => document.querySelector('#decode-prompt textarea').value === t", arg=EXAMPLE_0)

    page.locator("#pg-presenter-toggle input").click()  # outside presenter mode the keys are left alone
    page.wait_for_function("!document.documentElement.classList.contains('pg-presenter')")
    page.locator("#decode-run").focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("g")
    page.wait_for_timeout(1500)
    assert box.input_value() == EXAMPLE_0 and _tokens(page) == 0


def _bar_heights_during(page, temperature: float, title: str) -> list[list[float]]:
    """Sample both charts' bars every frame while the temperature changes: [distribution, waterfall] heights."""
    page.evaluate(SAMPLE_BARS_JS, 8000)
    _set(page, "decode-temperature", temperature)
    _wait_title(page, title)
    page.wait_for_timeout(1500)  # the transitions (up to 3 × 400 ms: axes out, bars, axes in)
    return page.evaluate("window.pgBars")


def _between(heights: list[float]) -> set[float]:
    """The distinct heights strictly between the first (old state) and the last (new state), 2 px clear of both:
    frames of a bar on its way."""
    lo, hi = sorted((heights[0], heights[-1]))
    return {round(h, 1) for h in heights if lo + 2 < h < hi - 2}


@pytest.mark.browser
def test_a_temperature_change_moves_the_bars_in_presenter_mode(presenter_url, page):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Normal mode first: the chart jumps from one state to the next (gradio draws every figure afresh).
    _open(page, presenter_url + "?presenter=0")
    _set(page, "decode-top-k", 3)  # three tall bars: a temperature change moves them by many pixels
    page.locator("#decode-run").click()
    _wait_title(page, "top-k 3")
    normal_font = page.evaluate("parseFloat(document.querySelector('#decode-chart .xtick text').style.fontSize)")
    jump, _ = _bar_heights_during(page, 0.1, "T=0.1")
    assert abs(jump[-1] - jump[0]) > 20 and _between(jump) == set()

    _open(page, presenter_url + "?presenter=1")
    _set(page, "decode-top-k", 3)
    _set(page, "decode-temperature", 0.5)  # the waterfall keeps its temperature row from here on
    page.locator("#decode-run").click()
    _wait_title(page, "T=0.5, top-k 3")
    big_font = page.evaluate("parseFloat(document.querySelector('#decode-chart .xtick text').style.fontSize)")
    assert big_font >= 1.3 * normal_font  # chart labels scaled through the layout
    # Plotly moves the bars over 400 ms: ~24 frames on an idle machine, one or two when the CPUs are busy (the
    # transition then skips ahead), so a frame strictly between the two states, in any of three tries, is the
    # proof: normal mode above never shows one.
    frames = [0, 0]  # the most in-between frames seen, per chart
    for temperature, title in ((0.1, "T=0.1"), (0.5, "T=0.5"), (0.1, "T=0.1")):
        for i, heights in enumerate(_bar_heights_during(page, temperature, title)):
            assert abs(heights[-1] - heights[0]) > 20, (i, heights[0], heights[-1])
            frames[i] = max(frames[i], len(_between(heights)))
        if min(frames) >= 1:
            break
    assert min(frames) >= 1, f"frames between the old and the new bar height (distribution, waterfall): {frames}"
    chart = page.locator("#decode-chart .js-plotly-plot")
    assert chart.bounding_box()["height"] > 600  # still drawn, at presenter size
    page.set_viewport_size({"width": 1100, "height": 1000})  # plotly's responsive resize redraws it
    page.wait_for_timeout(1000)
    assert chart.bounding_box()["height"] > 600
    assert errors == []
