"""Values typed into the number boxes of sliders and fields, in a real browser: out of range or emptied, they
never reach Gradio's own range error (a toast naming no field, and "Error" over every view). A slider's box is
clamped into its range as the bar shows it; a plain number box's value is checked by the handler, whose
warning names the field while the views keep what they showed."""

from __future__ import annotations

import pytest
from test_decode_browser import _open_decode, _wait_title

ERROR_MARKS_JS = """() => [...document.querySelectorAll('.error, .toast-body.error')]
    .filter(e => e.checkVisibility()).map(e => e.textContent.trim())"""


def _type(page, selector: str, text: str) -> None:
    box = page.locator(selector).first
    box.fill(text)
    box.press("Enter")


@pytest.mark.browser
def test_typed_slider_and_number_values_never_mark_the_views_error(app_url, page):
    _open_decode(page, app_url, 1)
    _wait_title(page, "Next-token probabilities · T=1, top-k 50")
    _type(page, "#decode-temperature input[type=number]", "5")  # the slider's range is 0-2
    _wait_title(page, "Next-token probabilities · T=2, top-k 50")  # drawn at the bar's value, as the page shows
    _type(page, "#decode-top-k input[type=number]", "")  # emptied: the page makes it the minimum, 0 = off
    _wait_title(page, "Next-token probabilities · T=2")
    page.wait_for_timeout(500)
    assert page.evaluate(ERROR_MARKS_JS) == []
    bars = page.locator("#decode-chart .bartext").count()
    _type(page, "#decode-seed input", "-1")
    page.locator("#decode-sample").click()
    page.locator(".toast-body").filter(has_text="seed").first.wait_for()
    assert "seed must be" in page.locator(".toast-body").filter(has_text="seed").first.inner_text()
    assert page.evaluate(ERROR_MARKS_JS) == []  # a warning, and the views kept what they showed
    assert page.locator("#decode-chart .bartext").count() == bars and page.locator("#decode-text .pg-tok").count() == 0
