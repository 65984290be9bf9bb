"""The Decode tab in a real browser, and its API endpoints through gradio_client, on the shared app: prompt,
sliders and click-to-append, the top-k/top-p picture, beams, and the strategy comparison. The waterfall of
samplers and branching are in test_decode_samplers_browser.py."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from conftest import set_slider as _set

# [text, problem] for every header or cell of a table that is cut ("…"), and every header wrapped inside a word.
BROKEN_CELLS_JS = """sel => {
  const bad = [];
  for (const span of document.querySelectorAll(sel + ' th span.header, ' + sel + ' [role=gridcell] span')) {
    const text = span.textContent;
    if (span.scrollWidth > span.clientWidth + 1) bad.push([text, 'cut']);
    if (!span.classList.contains('header')) continue;
    const node = [...span.childNodes].find(n => n.nodeType === 3);
    if (!node) continue;
    let top = null;
    for (let i = 0; i < node.length; i++) {
      const r = document.createRange(); r.setStart(node, i); r.setEnd(node, i + 1);
      const rect = r.getClientRects()[0];
      if (!rect || !rect.width) continue;
      if (top !== null && rect.top > top + 2 && !/\\s/.test(text[i - 1] || ' ') && !/\\s/.test(text[i]))
        bad.push([text, 'broken inside a word']);
      top = rect.top;
    }
  }
  return bad;
}"""

# Boxes of the distribution chart: plot area, every bar, the top-p label.
CHART_BOXES_JS = """() => {
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const chart = document.querySelector('#decode-chart');
  return {area: box(chart.querySelector('.bglayer .bg')),
          bars: [...chart.querySelectorAll('.bars path')].filter(p => p.getBBox().height > 0).map(box),
          topP: [...chart.querySelectorAll('.annotation')].filter(a => a.textContent.includes('top-p')).map(box)};
}"""


def _row(page, table: str, row: int) -> list[str]:
    """The texts of one data row (0 = first) of a gr.Dataframe."""
    cells = page.locator(f"#{table} [role=gridcell][data-row='{row}']")
    return [t.strip() for t in cells.all_inner_texts()]


def _top_bar_text(page) -> str:
    return page.locator("#decode-chart .bartext").first.text_content() or ""


def _wait_title(page, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#decode-chart .gtitle') || {}).textContent === t", arg=text)


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _click_in_menu(token, item) -> None:
    """Click an item of a token's hover menu like a user: hover, then click. The menu shows only while the token is
    hovered, and a chart finishing its redraw can still move the text from under the pointer (the hover is lost and
    the item hidden), so hover again and retry; a menu that never opens still fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(5):
        token.hover()
        try:
            item.click(timeout=5000)
            return
        except PlaywrightTimeout:
            if attempt == 4:
                raise


def _open_decode(page, app_url, example: int) -> None:
    page.goto(app_url)
    page.get_by_role("tab", name="Decode").click()
    page.locator(f"#decode-example-{example}").click()
    page.wait_for_selector("#decode-chart .bartext")


@pytest.mark.browser
def test_prompt_slider_and_click_to_append(app_url, page):
    page.goto(app_url)
    page.get_by_role("tab", name="Decode").click()
    page.locator("#decode-prompt textarea").fill("The rain in Spain falls mainly in the")
    page.locator("#decode-run").click()
    page.wait_for_selector("#decode-chart .bartext")
    page.wait_for_function("document.querySelectorAll('#decode-chart g.point').length >= 40")  # 20 raw + 20 final
    before = _top_bar_text(page)
    assert before.endswith("%")
    assert page.locator("#decode-table [role=grid]").get_attribute("aria-rowcount") == "21"  # header + 20 rows
    headers = page.locator("#decode-table th span.header").all_text_contents()
    assert headers == ["#", "token", "id", "raw", "after temp.", "top-p cum.", "after filters", "kept"]
    assert page.evaluate(BROKEN_CELLS_JS, "#decode-table") == []

    # a lower temperature sharpens the distribution: the top bar's value text changes
    _set(page, "decode-temperature", 0.3)
    page.wait_for_function(
        "prev => { const t = document.querySelector('#decode-chart .bartext'); return t && t.textContent !== prev; }",
        arg=before)
    after = _top_bar_text(page)
    assert float(after.rstrip("%")) > float(before.rstrip("%"))

    # clicking a candidate appends it and the text grows by one coloured token, with the colour key
    first = page.locator("#decode-candidates label").first
    label = first.text_content().split()[0].replace("␣", "")
    first.click()
    page.wait_for_selector("#decode-text .pg-tok")
    assert page.locator("#decode-text .pg-tok").count() == 1
    assert label in page.locator("#decode-text").inner_text()
    key = page.locator("#decode-text .pg-legend").inner_text()
    assert "0 %" in key and "100 %" in key and "probability it had when chosen" in key
    page.locator("#decode-greedy").click()
    page.wait_for_function("document.querySelectorAll('#decode-text .pg-tok').length === 2")
    page.screenshot(path=str(ARTIFACTS / "decode.png"), full_page=True)


@pytest.mark.browser
def test_top_k_then_top_p_picture_table_and_axis(app_url, page):
    """T 1.5, top-k 5, top-p 0.5: the cumulative line is the one top-p cuts on, the axis holds every bar,
    the top-p label clears the bars, and a greedy distribution has 0.00 bits over 1 token."""
    _open_decode(page, app_url, 1)  # "The capital of France is"
    _set(page, "decode-temperature", 1.5)
    _wait_title(page, "Next-token probabilities · T=1.5, top-k 50")
    _set(page, "decode-top-k", 5)
    _wait_title(page, "Next-token probabilities · T=1.5, top-k 5")
    _set(page, "decode-top-p", 0.5)
    _wait_title(page, "Next-token probabilities · T=1.5, top-k 5, top-p 0.5")
    legend = page.locator("#decode-chart .legendtext").all_text_contents()
    assert "cumulative after temperature + top-k (what top-p cuts on)" in legend
    first = _row(page, "decode-table", 0)
    assert first[-1] == "✓" and float(first[5]) >= 50  # the line reaches top-p at rank 1: one token kept
    assert [_row(page, "decode-table", i)[-1] for i in range(1, 5)] == ["✗ top-p"] * 4
    boxes = page.evaluate(CHART_BOXES_JS)
    area = boxes["area"]
    assert boxes["bars"] and all(bar[1] > area[1] + 1 for bar in boxes["bars"])  # no bar cut by the y range
    (label,) = boxes["topP"]
    assert label[0] >= area[2] - 1 and not any(_overlap(label, bar) for bar in boxes["bars"])
    assert page.evaluate(BROKEN_CELLS_JS, "#decode-table") == []
    page.screenshot(path=str(ARTIFACTS / "decode-top-k-top-p.png"), full_page=True)

    _set(page, "decode-temperature", 0)
    _wait_title(page, "Greedy (temperature 0): the top token gets 100 %")
    stats = page.locator("#decode-stats").inner_text()
    assert "Entropy: 0.00 bits" in stats and "-0.00" not in stats and "(1 token, greedy)" in stats


@pytest.mark.browser
def test_beam_search_says_equal_and_which_text_it_continues(app_url, page):
    _open_decode(page, app_url, 1)
    page.get_by_role("tab", name="Beam search").click()
    _set(page, "decode-beams", 2)
    _set(page, "decode-steps", 2)
    page.locator("#decode-run-beam").click()
    page.wait_for_selector("#decode-tree .annotation")
    summary = page.locator("#decode-beam-summary").inner_text()
    assert "Continues (the prompt)" in summary and "The capital of France is" in summary
    assert "the best beam is greedy's sequence" in summary and "more probable" not in summary
    notes = page.locator("#decode-tree .annotation").all_text_contents()
    assert "The capital of France is" in notes and "␣Paris" in notes  # the root says which text
    assert page.evaluate(BROKEN_CELLS_JS, "#decode-finals") == []
    best_row, greedy_row = _row(page, "decode-finals", 0), _row(page, "decode-finals", 2)
    assert greedy_row[0] == "greedy" and greedy_row[1:] == best_row[1:]  # same sequence, same numbers, same units

    # after a token is chosen in Next token, beam search says it continues that longer text
    page.get_by_role("tab", name="Next token", exact=True).click()
    page.locator("#decode-candidates label").first.click()
    page.wait_for_selector("#decode-text .pg-tok")
    page.get_by_role("tab", name="Beam search").click()
    page.locator("#decode-run-beam").click()
    page.wait_for_function("document.querySelector('#decode-beam-summary').innerText.includes('1 token chosen')")
    page.wait_for_timeout(1500)  # let the tree finish redrawing before the screenshot
    page.screenshot(path=str(ARTIFACTS / "decode-beam.png"), full_page=True)


@pytest.mark.browser
def test_strategy_comparison_shows_rows_as_they_finish(app_url, page):
    _open_decode(page, app_url, 2)
    page.get_by_role("tab", name="Temperature & strategies").click()
    page.locator("#decode-compare-run").click()
    # partial results: at least one row done while another still says it is running
    page.wait_for_function("""() => {
        const cells = [0, 1, 2].map(r => document.querySelector(
            `#decode-comparison [role=gridcell][data-row='${r}'][data-col='2']`)?.innerText || '');
        return cells.some(c => c.includes('running')) && cells[0] && !cells[0].includes('running'); }""")
    page.wait_for_function("""() => ![...document.querySelectorAll('#decode-comparison [role=gridcell]')]
                                    .some(c => c.innerText.includes('running'))""")
    rows = [_row(page, "decode-comparison", i) for i in range(3)]
    assert [r[0] for r in rows] == ["Greedy", "Beam search", "Sampled"] and all(r[3] for r in rows)


def test_next_token_api_and_validation(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    out = client.predict("The capital of France is", False, 0.7, 50, 0.9, 0.0, 1.0, 10, api_name="/next_token")
    rows = out["rows"]
    assert len(rows) == 10 and [r["rank"] for r in rows] == list(range(1, 11))
    assert {"token", "id", "prob", "final_prob", "cumulative", "rank", "kept", "top_p_input"} <= set(rows[0])
    assert out["cumulative_basis"] == "after temperature + top-k"
    assert all(a["cumulative"] <= b["cumulative"] for a, b in zip(rows, rows[1:]))
    # (the shared app may carry another tab's adapter, so no assertion on which word comes first)
    assert rows[0]["kept"] and rows[0]["final_prob"] >= rows[1]["final_prob"]
    assert all(r["kept"] == (r["final_prob"] > 0) for r in rows) and sum(r["final_prob"] for r in rows) <= 1 + 1e-5

    with pytest.raises(Exception, match=r"top_p must be in \(0, 1\] \(1 = off\); got 1.5"):
        client.predict("The capital of France is", False, 0.7, 50, 1.5, 0.0, 1.0, 10, api_name="/next_token")
    with pytest.raises(Exception, match="temperature"):
        client.predict("Hi", False, -1, 50, 1.0, 0.0, 1.0, 10, api_name="/next_token")
    with pytest.raises(Exception, match="num_beams"):
        client.predict("Hi", 0, 3, 1.0, False, api_name="/beam_search")
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", False, 1.0, 50, 1.0, 0.0, 1.0, 10, api_name="/next_token")
    # the app keeps working after bad input
    greedy = client.predict(prompt="The capital of France is", temperature=0.0, max_new_tokens=4, seed=0,
                            api_name="/generate")
    assert len(greedy["tokens"]) <= 4 and greedy["text"].startswith(greedy["tokens"][0]["token"].replace("␣", " "))
    beams = client.predict(prompt="The capital of France is", num_beams=2, steps=2, length_penalty=1.0, chat=False,
                           api_name="/beam_search")
    assert beams["continues"] == "The capital of France is"
    if beams["sequences"][0]["token_ids"] == beams["greedy"]["token_ids"]:  # (an adapter may change the words)
        assert beams["beam_vs_greedy"] == "equal" and beams["beam_beats_greedy"] is False
