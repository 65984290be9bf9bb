"""The real app in headless Chromium: header, Model tab, memory estimator, a failed model switch, auth."""

import urllib.request

import pytest
import torch

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_header_and_model_tab(app_url, page):
    page.goto(app_url)
    badge = page.locator("#pg-model-badge")
    badge.get_by_text("SmolLM2-135M-Instruct").wait_for()
    from playground.model.sources import pick_dtype

    expected = str(pick_dtype(torch.device("cpu"), "auto")).removeprefix("torch.")  # bf16 only with native support
    assert "cpu" in badge.inner_text() and f"dtype: {expected}" in badge.inner_text()
    page.locator("#model-summary").get_by_text("134.5M").wait_for()  # filled by the page-load event
    facts = page.locator("#model-facts").inner_text()
    assert "134,515,008" in facts and "49,152" in facts
    assert "Loaded adapters: none" in page.locator("#model-adapters").inner_text()
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


# Draw text on a canvas with the page's fonts: a missing glyph is drawn as the same empty box for every
# character ("tofu"), a real one is not; a colour emoji has coloured pixels.
GLYPHS = """() => {
  const draw = ch => {
    const c = document.createElement('canvas'); c.width = c.height = 40;
    const g = c.getContext('2d'); g.font = '32px ' + getComputedStyle(document.body).fontFamily;
    g.textBaseline = 'top'; g.fillStyle = '#000'; g.fillText(ch, 2, 2);
    return Array.from(g.getImageData(0, 0, 40, 40).data);
  };
  const same = (a, b) => a.every((v, i) => v === b[i]);
  const coloured = px => { for (let i = 0; i < px.length; i += 4)
    if (px[i + 3] > 200 && Math.max(px[i], px[i + 1], px[i + 2]) - Math.min(px[i], px[i + 1], px[i + 2]) > 60) return true;
    return false; };
  return {cjk_distinct: !same(draw('日'), draw('本')), emoji_coloured: coloured(draw('✅')) && coloured(draw('🍕'))};
}"""


def test_emoji_and_cjk_render_as_glyphs_not_boxes(app_url, page):
    """The Decode examples (日本の首都は, 🍕) and status marks need fonts-wqy-microhei and fonts-noto-color-emoji
    (installed by `make setup-dev`); without them the screenshots show empty boxes."""
    page.goto(app_url)
    page.locator("#pg-model-badge").get_by_text("SmolLM2-135M-Instruct").wait_for()
    assert page.evaluate(GLYPHS) == {"cjk_distinct": True, "emoji_coloured": True}


def test_failed_switch_keeps_model_and_explains(app_url, app_data_dir, page, tmp_path):
    page.goto(app_url)
    page.locator("#pg-model-badge").get_by_text("SmolLM2-135M-Instruct").wait_for()
    status = page.locator("#model-status")
    page.locator("#model-custom textarea").fill(str(tmp_path))  # a server folder outside the data dir: refused
    page.locator("#model-load").click()
    status.get_by_text("outside the folders this server may read").wait_for()
    assert "Model path" in status.inner_text() and "stays loaded" in status.inner_text()
    empty = app_data_dir / "empty-model"
    empty.mkdir(exist_ok=True)
    page.locator("#model-custom textarea").fill(str(empty))  # inside the data dir, but no config.json
    page.locator("#model-load").click()
    status.get_by_text("no config.json").wait_for()
    assert "stays loaded" in status.inner_text()
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
