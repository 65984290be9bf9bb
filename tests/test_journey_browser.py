"""A newcomer's whole path in a real browser, on a fresh data dir (no adapters, no runs): the Decode tab, a quick
Pig Latin run on the Train tab, the adapter in the library, activated for this browser, base vs tuned on Compare
and on Decode, a copied link opened in a second browser, presenter mode, and a poll room with a student.
Each step asserts what the page shows, then writes the README's screenshot of it to assets/journey/NN-name.png."""

from __future__ import annotations

import os
import re

import pytest
from conftest import BUNDLED_DATA_DIR, ROOT
from conftest import set_slider as set_number
from test_app_browser import GLYPHS
from test_compare_fixtures import last_answer
from test_train_browser import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = ROOT / "assets" / "journey"
ADAPTER = "pig-latin"  # the Train tab names the adapter after the recipe
MESSAGE = "Translate to Pig Latin: Can you help me?"
HEADERS = ["#", "token", "id", "raw", "after temp.", "top-p cum.", "after filters", "kept"]
LINK_VALUE_JS = "() => { const b = document.querySelector('#decode-link input, #decode-link textarea'); " \
                "return b && b.value.startsWith('http') ? b.value : null; }"
TRACES_JS = "s => (document.querySelector(s + ' .js-plotly-plot')?.data || []).map(t => t.name)"
CHART_VOTES = "document.querySelector('#room-chart .js-plotly-plot')?.data?.[0]"


@pytest.fixture(scope="module")
def journey_url(start_app, bundled_store, tmp_path_factory) -> str:
    """The real app on a data dir of its own: the test cache's converted model linked in (no 30 s conversion),
    nothing else, so the adapter library and the runs start empty as on a newcomer's machine."""
    data = tmp_path_factory.mktemp("journey-data")
    (data / "models").mkdir()
    for d in (BUNDLED_DATA_DIR / "models").glob("*"):
        if d.is_dir() and not d.name.startswith("."):
            os.symlink(d.resolve(), data / "models" / d.name)
    return start_app(data_dir=data)


def shot(page, name: str, until: str | None = None) -> None:
    """The README's picture of this step: the whole page, or its top down to the bottom of `until` (+ a margin)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    SHOTS.mkdir(parents=True, exist_ok=True)
    try:  # no "processing |" overlay over a component that is being redrawn (best effort: a picture only)
        page.wait_for_function("() => ![...document.querySelectorAll('.progress-text')].some(e => e.checkVisibility())",
                               timeout=20_000)
    except PlaywrightTimeout:
        pass
    page.wait_for_timeout(800)  # let the charts finish drawing
    clip = None
    if until:
        bottom = page.evaluate("s => document.querySelector(s).getBoundingClientRect().bottom + window.scrollY", until)
        clip = {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": bottom + 16}
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, clip=clip)


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_text(page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function("([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
                           arg=[selector, text], timeout=timeout)


def chart_points(page, trace: str) -> int:
    return page.evaluate("""t => { const p = document.querySelector('#train-chart .js-plotly-plot');
        const d = p && p.data && p.data.find(x => x.name === t); return d && d.x ? d.x.length : 0; }""", trace)


def wait_tokens(page, n: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('#decode-text .pg-tok').length === n", arg=n)


def rows(page, n: int = 5) -> list[list[str]]:
    """The first `n` rows of the Decode table, cell texts."""
    page.wait_for_function("() => document.querySelector('#decode-table [role=gridcell]') !== null")
    return [[t.strip() for t in page.locator(f"#decode-table [role=gridcell][data-row='{r}']").all_inner_texts()]
            for r in range(n)]


def headers(page) -> list[str]:
    return [h.strip() for h in page.locator("#decode-table th span.header").all_text_contents()]


def test_a_newcomers_journey(journey_url, page, second):
    badge = page.locator("#pg-model-badge")

    # 1. Open the app: the Decode tab draws the next-token distribution of an example prompt (CJK glyphs, no boxes).
    page.goto(journey_url)
    badge.get_by_text("base (no adapter)").wait_for()
    assert "SmolLM2-135M-Instruct" in badge.inner_text()
    page.get_by_role("tab", name="Decode").click()
    page.locator("#decode-example-4").click()  # 日本の首都は
    page.wait_for_selector("#decode-chart .bartext")
    assert page.locator("#decode-prompt textarea").input_value() == "日本の首都は"
    assert page.locator("#decode-table [role=grid]").get_attribute("aria-rowcount") == "21"  # header + 20 rows
    assert headers(page) == HEADERS  # no "base raw" column: no adapter yet
    top = rows(page, 1)[0]
    assert top[0] == "1" and float(top[3]) > 0 and top[-1] == "✓"
    assert "Entropy:" in page.locator("#decode-stats").inner_text()
    assert page.evaluate(GLYPHS) == {"cjk_distinct": True, "emoji_coloured": True}
    shot(page, "01-decode", until="#decode-text")

    # 2. Train tab: the Pig Latin recipe's quick preset (30 steps, as the lesson runs it); the loss falls live.
    page.get_by_role("tab", name="Train").click()
    assert "Pig Latin" in page.locator("#train-recipe-info").inner_text()
    page.locator("#train-length-mode").get_by_text("Max steps").click()
    set_number(page, "train-max-steps", 30)
    assert page.locator("#train-adapter-name textarea, #train-adapter-name input").first.input_value() == ADAPTER
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text(re.compile(rf"run \d{{8}}-\d{{6}}-{ADAPTER}")).first.wait_for()
    bar = page.locator("#train-progress-bar")
    wait_until(lambda: bar.get_attribute("data-state") == "completed", 900, "the 30-step run to complete")
    assert bar.get_attribute("data-step") == "30" and bar.get_attribute("data-total") == "30"
    assert f"adapter {ADAPTER} saved" in page.locator("#train-status").inner_text()
    wait_until(lambda: chart_points(page, "train loss") == 30, 30, "30 loss points on the chart")
    losses = page.evaluate("() => document.querySelector('#train-chart .js-plotly-plot').data"
                           ".find(d => d.name === 'train loss').y")
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # the loss fell
    wait_until(lambda: page.locator("#train-probes [data-testid='cell-0-0']").count(), 30, "the probe answers")
    assert page.locator("#train-probes [data-testid='cell-0-0']").inner_text().strip() == "30"  # newest first
    probe = page.locator("#train-probes [data-testid='cell-0-1']").inner_text()
    assert re.search(r"\w+ay\b", probe), probe  # the tuned probe answers in "-ay" words
    shot(page, "02-train", until="#train-probes")

    # 3. The adapter the run saved is in the Adapters tab's library, with its card and loss curve.
    page.get_by_role("tab", name="Adapters").click()
    wait_text(page, "#pg-adapters-table", ADAPTER, timeout=15_000)  # the library follows by itself
    pick(page, "pg-adapter-pick", ADAPTER)
    page.locator("#pg-adapter-curve .main-svg").first.wait_for()
    page.wait_for_function("n => document.querySelector('#pg-adapter-detail h3')?.textContent.trim() === n",
                           arg=ADAPTER)
    wait_text(page, "#pg-adapter-detail", "Rank: 32")  # the recipe's rank
    card = page.locator("#pg-adapter-detail").inner_text()
    assert "trained · on disk" in card and "30 steps" in card
    shot(page, "03-adapters")

    # 4. Activate it for this browser: the header names it, as this browser's own choice.
    page.locator("#pg-adapter-activate").click()
    wait_text(page, "#pg-model-badge", f"{ADAPTER} (this browser)")
    assert "base (no adapter)" not in badge.inner_text()
    wait_text(page, "#pg-adapters-table", "active")
    shot(page, "04-activated", until="#pg-adapter-pick")

    # 5. Compare: base and tuned answer the same message differently; "what changed" colours the tuned tokens.
    page.get_by_role("tab", name="Compare").click()
    page.locator("#pg-compare-hint").get_by_text(ADAPTER).wait_for()
    page.get_by_text("Settings (shared by every column)").click()
    set_number(page, "pg-compare-temperature", 0)
    set_number(page, "pg-compare-max-new", 48)
    page.locator("#pg-compare-settings-note").get_by_text("up to 48 new tokens").wait_for()
    page.locator("#pg-compare-input textarea").fill(MESSAGE)
    page.locator("#pg-compare-send").click()
    page.wait_for_selector("#pg-compare-diff .pg-tok", timeout=300_000)
    base, tuned = last_answer(page, "pg-compare-base"), last_answer(page, "pg-compare-tuned")
    assert base and tuned and base != tuned
    assert re.search(r"\w+ay\b", tuned), tuned
    assert page.locator("#pg-compare-diff .pg-diverge").count() == 1  # the first token where they part
    assert "p(base)" in page.locator("#pg-compare-diff .pg-tok").first.get_attribute("title")
    assert page.locator("#pg-compare-tuned").get_by_text(f"adapter {ADAPTER}").count() >= 1
    shot(page, "05-compare")

    # 6. Decode with the adapter: the chart overlays the base model's probabilities, the table a "base raw" column.
    page.get_by_role("tab", name="Decode").click()
    # The view drawn in step 1 was redrawn when this browser activated the adapter: no base model's numbers left
    page.wait_for_function("() => [...document.querySelectorAll('#decode-table th span.header')]"
                           ".some(th => th.innerText.trim() === 'base raw')")
    assert page.locator("#decode-prompt textarea").input_value() == "日本の首都は"
    page.locator("#decode-prompt textarea").fill(MESSAGE)
    page.locator("#decode-chat input").check()
    page.locator("#decode-run").click()
    page.wait_for_function("s => document.querySelector('#decode-stats')?.innerText.includes(s)",
                           arg=f"base model without {ADAPTER}")
    # Ticking the box reran the prompt too: both runs are over before Greedy adds a token
    page.wait_for_function("() => ![...document.querySelectorAll('.progress-text')].some(e => e.checkVisibility())")
    page.wait_for_function("n => (document.querySelector('#decode-chart .js-plotly-plot')?.data || [])"
                           ".some(t => t.name === n)", arg=f"base (without {ADAPTER})")
    assert headers(page) == HEADERS[:4] + ["base raw"] + HEADERS[4:]
    for n in (1, 2, 3):
        page.locator("#decode-greedy").click()
        wait_tokens(page, n)
    tuned_raw, base_raw = (float(c) for c in rows(page, 1)[0][3:5])
    assert tuned_raw != base_raw
    text, top_rows = page.locator("#decode-text").inner_text(), rows(page)
    shot(page, "06-decode-overlay", until="#decode-text")

    # 7. Copy link, open it in a second browser: the same prompt, adapter, tokens and distribution.
    page.locator("#decode-copy-link").click()
    link = page.wait_for_function(LINK_VALUE_JS).json_value()
    assert link.startswith(journey_url + "?tab=decode") and f"adapter={ADAPTER}" in link and "&steps=g" in link
    second.goto(link)
    wait_tokens(second, 3)
    assert second.locator("#decode-prompt textarea").input_value() == MESSAGE
    assert second.locator("#decode-chat input").is_checked()
    wait_text(second, "#pg-model-badge", f"{ADAPTER} (this browser)")
    # The page-load events still running draw a timer over the text (a redraw of the same view may follow)
    second.wait_for_function("() => ![...document.querySelectorAll('.progress-text')].some(e => e.checkVisibility())")
    assert second.locator("#decode-text").inner_text() == text
    second.wait_for_function("() => document.querySelector('#decode-table [role=grid]') !== null")
    for _ in range(60):  # the restored knobs re-filter the table after the first draw (their own change event)
        if rows(second) == top_rows:
            break
        second.wait_for_timeout(500)
    assert rows(second) == top_rows
    second.wait_for_function("n => (document.querySelector('#decode-chart .js-plotly-plot')?.data || [])"
                             ".some(t => t.name === n)", arg=f"base (without {ADAPTER})")  # plotly loads late
    assert second.locator("#pg-link-notes").inner_text().strip() == ""  # nothing in the link was ignored
    shot(second, "07-link-second-browser", until="#decode-text")

    # 8. Presenter mode from the header: large type, the advanced controls folded away, the keys legend.
    size = "() => parseFloat(getComputedStyle(document.querySelector('#decode-prompt textarea')).fontSize)"
    normal = page.evaluate(size)
    assert page.locator("#decode-seed").is_visible()
    page.locator("#pg-presenter-toggle input").click()
    page.wait_for_function("document.documentElement.classList.contains('pg-presenter')")
    assert page.evaluate(size) >= 1.3 * normal
    assert not page.locator("#decode-seed").is_visible() and page.locator("#pg-keys").is_visible()
    shot(page, "08-presenter", until="#decode-candidates")

    # 9. A poll room: the presenter opens "Guess the next token", a student joins with the code and votes,
    # the presenter's chart counts the vote.
    page.get_by_role("tab", name="Guess the next token").click()
    page.wait_for_function("!document.querySelector('#pg-keys').checkVisibility()")  # the Decode tab's keys stay there
    prompt = "My favourite food is 🍕 because"
    page.locator("#room-prompt textarea").fill(prompt)
    page.locator("#room-open").click()
    page.wait_for_selector("#pg-room-code")
    code = page.locator("#pg-room-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{4}", code), code
    assert page.locator("#pg-room-url").inner_text() == f"{journey_url}?room={code}"
    page.wait_for_function(f"({CHART_VOTES})?.x?.length === 10")  # the pick list's bars, no votes yet
    student = second
    student.goto(f"{journey_url}?room={code}")
    student.wait_for_function(f"document.querySelector('#room-code input, #room-code textarea')?.value === '{code}'")
    student.locator("#room-name input, #room-name textarea").fill("Ana")
    student.locator("#room-join-btn").click()
    student.get_by_text("which token will the model put next?").wait_for()
    assert prompt in student.locator("#room-student-text").inner_text()
    choices = [t.strip() for t in student.locator("#room-pick label").all_inner_texts()]
    assert len(choices) == 10
    guess = choices[0]
    student.locator("#room-pick label").first.click()
    student.locator("#room-vote").click()
    student.get_by_text(f"Your vote: “{guess}”").wait_for()
    page.wait_for_function(f"(() => {{ const d = {CHART_VOTES}; return d && d.y[d.x.indexOf({guess!r})] === 1; }})()")
    wait_text(page, "#room-status", "1 joined, 1 voted")
    assert prompt in page.locator("#room-text").inner_text()
    shot(page, "09-room-presenter")
    shot(student, "10-room-student")
