"""The real app in headless Chromium: header, Model tab, memory estimator, a failed model switch, auth."""

import urllib.request

import pytest

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_header_and_model_tab(app_url, page):
    page.goto(app_url)
    badge = page.locator("#pg-model-badge")
    badge.get_by_text("SmolLM2-135M-Instruct").wait_for()
    assert "cpu" in badge.inner_text() and "float32" in badge.inner_text()
    page.locator("#model-summary").get_by_text("134.5M").wait_for()  # filled by the page-load event
    facts = page.locator("#model-facts").inner_text()
    assert "134,515,008" in facts and "49,152" in facts
    assert "<|im_start|>" in page.locator("#model-template").inner_text()
    assert page.locator("#model-template .pg-special").count() >= 9  # 5 im_start + 4 im_end
    # The memory chart is drawn as a stacked bar with five segments.
    page.locator("#memory-chart .main-svg").first.wait_for()
    assert page.locator("#memory-chart g.trace.bars").count() == 5
    total_before = page.locator("#memory-total").inner_text()
    page.get_by_label("Full fine-tune").check()
    page.wait_for_function("t => !document.querySelector('#memory-total').innerText.includes(t)",
                           arg=total_before.split("·")[0].strip())
    assert "trainable parameters 134,515,008" in page.locator("#memory-total").inner_text()
    page.screenshot(path=str(ARTIFACTS / "model-tab.png"), full_page=True)


def test_failed_switch_keeps_model_and_explains(app_url, page, tmp_path):
    page.goto(app_url)
    page.locator("#pg-model-badge").get_by_text("SmolLM2-135M-Instruct").wait_for()
    page.locator("#model-custom textarea").fill(str(tmp_path))  # an empty folder: no config.json
    page.locator("#model-load").click()
    page.locator("#model-status").get_by_text("stays loaded").wait_for()
    assert "no config.json" in page.locator("#model-status").inner_text()
    assert "SmolLM2-135M-Instruct" in page.locator("#pg-model-badge").inner_text()


def test_auth_flag_requires_login(start_app, app_url, page):
    url = start_app("--auth", "teacher:s3cret", data_dir=None)
    page.goto(url)
    page.get_by_text("Login").first.wait_for()
    assert page.locator("#pg-model-badge").count() == 0
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url + "config", timeout=5)
    page.get_by_label("username").fill("teacher")
    page.get_by_label("password").fill("s3cret")
    page.get_by_role("button", name="Login").click()
    page.locator("#pg-model-badge").get_by_text("SmolLM2-135M-Instruct").wait_for()
