"""Train tab in a real browser on the bundled model: pick the DPO preference recipe, preview the pairs side by
side, start, and watch the reward chart move; then the same through the API (status and resume)."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from test_train_browser import chart_points, start_short_run, wait_until

ADAPTER = "browser-dpo"


def reward_points(page, trace: str) -> int:
    """Number of x values of a named trace in the live reward chart (0 while it is not drawn)."""
    return chart_points(page, trace, "#train-reward-chart")


@pytest.mark.browser
def test_dpo_recipe_trains_and_the_reward_chart_moves(app_url, page):
    from gradio_client import Client

    page.goto(app_url)
    page.get_by_role("tab", name="Train").click()
    page.locator("#train-recipe input").click()
    page.get_by_role("option", name="Polite sign-off (DPO preference pairs)", exact=True).click()
    # The recipe switches the method to DPO: its settings show, the SFT-only box hides.
    page.locator("#train-beta").wait_for(state="visible", timeout=30_000)
    assert page.locator("#train-method input[value='dpo']").is_checked()
    assert "chosen" in page.locator("#train-method-note").inner_text()
    page.locator("#train-preview-btn").click()
    page.locator("#train-data-summary").get_by_text("format preference").wait_for(timeout=120_000)
    headers = page.locator("#train-preview-table").inner_text()
    assert "chosen ✓" in headers and "rejected ✗" in headers  # the pairs side by side
    assert "Hope this helps!" in page.locator("#train-mask").inner_text()

    start_short_run(page, ADAPTER, probe_every=0)
    wait_until(lambda: reward_points(page, "margin") >= 1, 600, "the first reward point")
    wait_until(lambda: page.locator("#train-progress-bar").get_attribute("data-state") == "completed", 600,
               "the run to complete")
    wait_until(lambda: reward_points(page, "chosen reward") == 3 and reward_points(page, "accuracy") == 3, 30,
               "3 reward points")
    assert "reference model: the base model" in page.locator("#train-method-info").inner_text()
    page.screenshot(path=str(ARTIFACTS / "train-dpo.png"), full_page=True)

    client = Client(app_url, verbose=False)
    st = client.predict("", api_name="/train_status")
    assert st["method"] == "dpo" and st["adapter"] == ADAPTER and len(st["rewards"]) == 3
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(st["rewards"][-1])
    with pytest.raises(Exception, match="already completed|no checkpoint"):
        client.predict(st["run_id"], api_name="/train_resume")
