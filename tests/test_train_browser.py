"""Train tab in a real browser on the bundled model: recipe -> Start -> live chart, probe answers, adapter."""

from __future__ import annotations

import re
import time

import pytest
from conftest import ARTIFACTS

ADAPTER = "browser-pig"


def set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    box.fill(str(value))
    box.press("Tab")


def chart_points(page, trace: str, chart: str = "#train-chart") -> int:
    """Number of x values of a named trace in a live plotly chart (0 while it is not drawn)."""
    return page.evaluate(
        """([trace, chart]) => {
            const plot = document.querySelector(chart + ' .js-plotly-plot');
            if (!plot || !plot.data) return 0;
            const t = plot.data.find(d => d.name === trace);
            return t && t.x ? t.x.length : 0;
        }""", [trace, chart])


PROBES = "#train-probes"


def probe_rows(page) -> int:
    """Rows of the probe timeline (Gradio 6 renders a virtualised grid, not <tbody> rows)."""
    return page.locator(f"{PROBES} .virtual-row").count()


def wait_until(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def start_short_run(page, adapter: str, probe_every: int):
    """The steps every browser training test takes: 3 steps of batch 2 into `adapter`, then Start; returns the
    Start button once the status names the new run."""
    page.locator("#train-length-mode").get_by_text("Max steps").click()
    set_number(page, "train-max-steps", 3)
    set_number(page, "train-probe-every", probe_every)
    set_number(page, "train-batch-size", 2)
    page.locator("#train-adapter-name textarea, #train-adapter-name input").first.fill(adapter)
    start = page.locator("#train-start")
    assert start.is_enabled() and start.inner_text().strip() == "Start training"
    start.click()
    # "Started run <id>", soon replaced by the live "starting · run <id>" line: either names the new run.
    page.locator("#train-status").get_by_text(re.compile(rf"run \d{{8}}-\d{{6}}-{adapter}")).first.wait_for(
        timeout=60_000)
    return start


@pytest.mark.browser
def test_pig_latin_recipe_trains_live_in_the_browser(app_url, page):
    from gradio_client import Client

    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-recipe").wait_for()
    assert "Pig Latin" in page.locator("#train-recipe-info").inner_text()
    # Filled by a page-load event (PEFT counts on a weightless copy): r=32 on all 7 Linear kinds x 30 layers
    # = 30 * 32 * (2*(576+576) + 2*(576+192) + 3*(576+1536)) = 9,768,960.
    page.locator("#train-params").get_by_text("Trainable parameters: 9,768,960").wait_for(timeout=60_000)
    # The loss-mask view of one formatted example: the answer is highlighted, the prompt is not.
    page.locator("#train-preview-btn").click()
    page.locator("#train-data-summary").get_by_text("673 train").wait_for(timeout=120_000)
    assert "tokens carry loss" in page.locator("#train-mask-info").inner_text()

    start = start_short_run(page, ADAPTER, probe_every=1)
    # While it trains, Start says so; pressing it starts nothing and names the run in the way (this page's own).
    wait_until(lambda: "Training in progress" in start.inner_text(), 30, "Start to say a run trains")
    start.click()
    notice = page.locator("#train-notice")
    notice.get_by_text(re.compile(rf"Your run is training: \d{{8}}-\d{{6}}-{ADAPTER}, SFT, adapter .{ADAPTER}., "
                                  r"started by you")).wait_for(timeout=30_000)
    assert "Start again when it finishes" in notice.inner_text()

    # The chart gains points and the probe timeline gains answers while it trains.
    wait_until(lambda: chart_points(page, "train loss") >= 1, 400, "the first loss point")
    wait_until(lambda: probe_rows(page) >= 1 and page.locator(f"{PROBES} [data-testid='cell-0-1']").inner_text(),
               300, "a probe answer")
    bar = page.locator("#train-progress-bar")
    wait_until(lambda: bar.get_attribute("data-state") == "completed", 400, "the run to complete")
    assert f"adapter {ADAPTER} saved" in page.locator("#train-status").inner_text()
    wait_until(lambda: start.inner_text().strip() == "Start training", 30, "Start to read Start again")
    # The run it named has ended: the sentence goes (a timer may be redrawing the box, showing its clock).
    wait_until(lambda: "is training" not in notice.inner_text(), 30, "the notice to clear")
    assert "cpu · fp32" in page.locator("#train-status").inner_text()  # precision chosen from the hardware
    wait_until(lambda: chart_points(page, "train loss") == 3, 30, "3 loss points")
    assert chart_points(page, "eval loss") >= 1
    wait_until(lambda: probe_rows(page) >= 4, 30, "4 probe answers")  # step 0 (the base model), 1, 2, 3
    assert page.locator(f"{PROBES} [data-testid='cell-0-0']").inner_text().strip() == "3"  # newest first
    assert bar.get_attribute("data-step") == "3"
    page.screenshot(path=str(ARTIFACTS / "train.png"), full_page=True)

    # The same run through the scripting API; a second start with bad settings is refused politely.
    client = Client(app_url, verbose=False)
    st = client.predict("", api_name="/train_status")
    assert st["state"] == "completed" and st["adapter"] == ADAPTER and len(st["losses"]) == 3 and st["probes"]
    with pytest.raises(Exception, match="LoRA rank r"):
        client.predict("pig-latin", '{"r": 0}', api_name="/train_start")
    assert "No run is in progress" in client.predict("", api_name="/train_stop")
