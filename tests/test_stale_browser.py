"""No stale results in a real browser, on an app of our own whose library holds two random LoRAs for the bundled
model: the Inside views redraw when this browser switches adapter and a slider after a prompt edit shows the new
prompt; the Train tab's preview and adapter name follow the data source; the Adapters status line follows an
adapter deleted in another browser."""

from __future__ import annotations

import json

import pytest
from conftest import ARTIFACTS, set_slider
from test_compare_fixtures import add_random_lora, bundled_data_dir, pick, wait_text

ADAPTERS = ("pig", "doomed")


@pytest.fixture(scope="module")
def stale_url(start_app, bundled_checkpoint) -> str:
    data = bundled_data_dir("pg-stale-data-")
    for seed, name in enumerate(ADAPTERS):
        add_random_lora(data, bundled_checkpoint, name, seed, created_at=f"2025-01-01T00:00:0{seed}+00:00",
                        run_id=f"test-{seed}")
    return start_app(data_dir=data)


def activate(page, name: str) -> None:
    page.get_by_role("tab", name="Adapters").click()
    wait_text(page, "#pg-adapters-table", name)
    pick(page, "pg-adapter-pick", name)
    page.locator("#pg-adapter-activate").click()
    wait_text(page, "#pg-model-badge", f"{name} (this browser)")


@pytest.mark.browser
def test_inside_redraws_for_this_browsers_adapter_and_a_slider_shows_the_edited_prompt(stale_url, page):
    page.goto(stale_url)
    page.get_by_role("tab", name="Inside the model").click()
    page.locator("#inside-lens-run").click()
    wait_text(page, "#inside-lens-summary", "the base model (no adapter)")  # the base result names its model
    page.get_by_role("tab", name="Attention").click()
    page.locator("#inside-attn-run").click()
    wait_text(page, "#inside-attn-summary", "“The capital of France is”")

    activate(page, "pig")
    page.get_by_role("tab", name="Inside the model").click()
    wait_text(page, "#inside-attn-summary", "adapter pig")  # redrawn by itself, no click
    page.get_by_role("tab", name="Logit lens").click()
    wait_text(page, "#inside-lens-summary", "adapter pig")
    assert "base model" not in page.locator("#inside-lens-summary").inner_text()

    # Edit the prompt, then move a slider: the attention shown is the new prompt's, not the old one re-sliced.
    page.get_by_role("tab", name="Attention").click()
    page.locator("#inside-prompt textarea").fill("1, 2, 3, 4, 5,")
    set_slider(page, "inside-layer", 2)
    wait_text(page, "#inside-attn-summary", "“1, 2, 3, 4, 5,”")
    summary = page.locator("#inside-attn-summary").inner_text()
    assert "In layer 2" in summary and "France" not in summary and "adapter pig" in summary
    page.screenshot(path=str(ARTIFACTS / "stale-inside.png"), full_page=True)


@pytest.mark.browser
def test_the_train_preview_and_name_follow_the_data_source(stale_url, page, tmp_path):
    page.goto(stale_url)
    page.get_by_role("tab", name="Train").click()
    name = page.locator("#train-adapter-name textarea, #train-adapter-name input").first
    page.locator("#train-preview-btn").click()
    wait_text(page, "#train-data-summary", "pig-latin")
    assert name.input_value() == "pig-latin"

    pick(page, "train-recipe", "Shouty answers")
    wait_text(page, "#train-data-summary", "source changed")
    assert "pig-latin" not in page.locator("#train-data-summary").inner_text()
    assert "Click Preview data" in page.locator("#train-preview-table").inner_text()
    page.wait_for_function("() => !document.querySelector('#train-length-plot .js-plotly-plot')")
    assert page.locator("#train-mask").inner_text().strip() in ("", "Loss mask: green tokens are training "
                                                                 "targets, the rest is masked")
    page.wait_for_function("() => document.querySelector('#train-adapter-name textarea, #train-adapter-name "
                           "input').value === 'shouty'")

    page.locator("#train-kind").get_by_text("Upload a file", exact=True).click()
    page.wait_for_function("() => document.querySelector('#train-adapter-name textarea, #train-adapter-name "
                           "input').value === 'my-adapter'")  # not the recipe's name
    data = tmp_path / "cols.jsonl"
    data.write_text("\n".join(json.dumps({"q": f"q{i}", "a": f"a{i}"}) for i in range(4)) + "\n")
    page.locator("#train-path input[type=file]").set_input_files(str(data))
    page.wait_for_function("() => document.querySelector('#train-adapter-name textarea, #train-adapter-name "
                           "input').value === 'cols'")

    name.fill("my-own")  # a name the user typed stays through a source change
    page.locator("#train-kind").get_by_text("Bundled recipe", exact=True).click()
    wait_text(page, "#train-data-summary", "source changed")
    page.wait_for_timeout(1500)  # give a wrong overwrite its chance
    assert name.input_value() == "my-own"


@pytest.mark.browser
def test_the_status_line_follows_an_adapter_deleted_in_another_browser(stale_url, page, second):
    second.goto(stale_url)
    activate(second, "doomed")
    wait_text(second, "#pg-adapters-status", "active in this browser")

    page.goto(stale_url)
    page.get_by_role("tab", name="Adapters").click()
    wait_text(page, "#pg-adapters-table", "doomed")
    pick(page, "pg-adapter-pick", "doomed")
    page.get_by_text("Rename · delete · export · merge into the base").click()
    page.locator("#pg-adapter-confirm input").check()
    page.locator("#pg-adapter-delete").click()
    wait_text(page, "#pg-adapters-status", "doomed")

    wait_text(second, "#pg-model-badge", "base (no adapter)")  # the header was already right
    wait_text(second, "#pg-adapters-status", "deleted elsewhere")  # and now the status line too
    status = second.locator("#pg-adapters-status").inner_text()
    assert "is active in this browser" not in status and "base model (no adapter)" in status
    second.screenshot(path=str(ARTIFACTS / "stale-adapters.png"), full_page=True)
