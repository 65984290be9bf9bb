"""Adapters + Compare tabs in a real browser on an app of our own whose data dir holds a random LoRA adapter
(test_compare_fixtures.py): activate and compare, the Model tab with an adapter, library changes reaching
every tab, and the held-out evaluation. The API and per-browser activation are in test_compare_api_browser.py."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import ARTIFACTS, set_slider
from test_compare_fixtures import (  # noqa: F401 (adapter_data, adapter_app: fixtures)
    ADAPTER, BROKEN_HEADER_WORDS, adapter_app, adapter_data, last_answer, options, pick, wait_text,
)


@pytest.mark.browser
def test_activate_then_compare_shows_two_answers_with_divergence(adapter_app, page):
    page.goto(adapter_app)
    badge = page.locator("#pg-model-badge")
    badge.get_by_text("base (no adapter)").wait_for()
    page.get_by_role("tab", name="Adapters").click()
    page.wait_for_function("n => (document.querySelector('#pg-adapters-table')?.innerText || '').includes(n)",
                           arg=ADAPTER)
    page.locator("#pg-adapter-activate").click()
    badge.get_by_text(ADAPTER).wait_for()  # the header badge follows the active adapter
    assert "base (no adapter)" not in badge.inner_text()
    page.locator("#pg-adapter-curve .main-svg").first.wait_for()  # the detail card's loss curve
    card = page.locator("#pg-adapter-detail").inner_text()
    assert "pig-latin · 694 rows · sha256 000000000000…" in card and "0" * 64 not in card
    wait_text(page, "#pg-adapters-table", "active")  # the table is redrawn by its own (queued) event

    page.get_by_role("tab", name="Compare").click()
    page.locator("#pg-compare-hint").get_by_text(ADAPTER).wait_for()
    assert "No adapter is active" not in page.locator("#pg-compare-diff").inner_text()
    assert ADAPTER in page.locator("#pg-compare-diff").inner_text()  # the placeholder names the same adapter
    note = page.locator("#pg-compare-settings-note").inner_text()
    assert "temperature 0.7" in note and "top-p 0.95" in note and "Decode tab" in note
    page.get_by_text("Settings (shared by every column)").click()
    set_slider(page, "pg-compare-max-new", 32)
    page.locator("#pg-compare-settings-note").get_by_text("up to 32 new tokens").wait_for()  # the note follows
    page.locator("#pg-compare-input textarea").fill("What is the capital of France?")
    page.locator("#pg-compare-send").click()
    page.wait_for_selector("#pg-compare-diff .pg-tok", timeout=120_000)
    page.wait_for_selector("#pg-compare-diff .pg-diverge")
    base_text, tuned_text = last_answer(page, "pg-compare-base"), last_answer(page, "pg-compare-tuned")
    assert base_text and tuned_text and base_text != tuned_text
    # Each tuned token is coloured by Δ log p and carries both probabilities on hover.
    first = page.locator("#pg-compare-diff .pg-tok").first
    assert "p(tuned)" in first.get_attribute("title") and "p(base)" in first.get_attribute("title")
    assert "rgba(" in first.get_attribute("style")
    assert "log p" in page.locator("#pg-compare-diff .pg-diff-legend").inner_text()
    assert page.locator("#pg-compare-tuned").get_by_text(f"adapter {ADAPTER}").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

    # The choice belonged to that page: a fresh page follows the server's default (the base) again.
    page.goto(adapter_app)
    page.get_by_role("tab", name="Compare").click()
    wait_text(page, "#pg-model-badge", "base (no adapter) (server default)")
    assert "No adapter is active" in page.locator("#pg-compare-diff").inner_text()


@pytest.mark.browser
def test_model_tab_describes_the_base_model_with_an_adapter_loaded(adapter_app, page):
    """The issue: with adapters loaded the tab said 149.2M parameters, listed lora_A/lora_B layers and the
    estimator counted them as layers to wrap. It must describe the base, and list the adapters apart."""
    from gradio_client import Client

    Client(adapter_app, verbose=False).predict(ADAPTER, api_name="/adapter_activate")
    page.goto(adapter_app)  # reload with the adapter active
    page.locator("#pg-model-badge").get_by_text(ADAPTER).wait_for()
    page.locator("#model-summary").get_by_text("134.5M").wait_for()
    assert "134,515,008" in page.locator("#model-facts").inner_text()
    layers = page.locator("#model-layers").inner_text()
    assert "lora" not in layers and "base_layer" not in layers
    adapters_line = page.locator("#model-adapters")
    adapters_line.get_by_text(f"{ADAPTER} (active)").wait_for()
    # r=8 on q_proj (576→576) and v_proj (576→192) in 30 layers: 30 · 8 · (1152 + 768) = 460,800
    assert "460,800 parameters" in adapters_line.inner_text()
    page.locator("#memory-total").get_by_text("trainable parameters 4,884,480").wait_for()  # LoRA r16 of the base
    page.screenshot(path=str(ARTIFACTS / "model-tab-adapter.png"), full_page=True)
    # "Base only" keeps the PEFT wrapper: the numbers stay the base's, the adapter line follows.
    page.get_by_role("tab", name="Adapters").click()
    page.locator("#pg-adapter-deactivate").click()
    page.locator("#pg-model-badge").get_by_text("base (no adapter)").wait_for()
    page.get_by_role("tab", name="Model", exact=True).click()
    page.wait_for_function("() => !document.querySelector('#model-adapters').innerText.includes('(active)')")
    assert "134.5M" in page.locator("#model-summary").inner_text()
    assert "lora" not in page.locator("#model-layers").inner_text()
    assert "trainable parameters 4,884,480" in page.locator("#memory-total").inner_text()


@pytest.mark.browser
def test_library_changes_reach_every_tab_by_themselves(adapter_app, adapter_data, page):
    """An adapter saved by another process (as a training worker does), a mix, a rename: every list follows
    without a Refresh click; the mixed adapter's card says what it was mixed from and draws no empty chart."""
    page.goto(adapter_app)
    page.get_by_role("tab", name="Adapters").click()
    table = page.locator("#pg-adapters-table")
    wait_text(page, "#pg-adapters-table", ADAPTER)
    staging = adapter_data / "adapters" / ".tmp-from-worker"  # what fsutil.atomic_dir does: write, then rename
    shutil.copytree(adapter_data / "adapters" / ADAPTER, staging)
    meta = json.loads((staging / "playground.json").read_text())
    (staging / "playground.json").write_text(json.dumps({**meta, "name": "from-worker"}))
    os.replace(staging, adapter_data / "adapters" / "from-worker")
    wait_text(page, "#pg-adapters-table", "from-worker", timeout=15_000)  # polled, no Refresh click
    assert "from-worker" in options(page, "pg-adapter-pick")

    page.get_by_text("Mix adapters (weighted)").click()
    pick(page, "pg-mix-names", ADAPTER)
    pick(page, "pg-mix-names", "from-worker")
    page.keyboard.press("Escape")
    page.locator("#pg-mix-name textarea").fill("blend")
    page.locator("#pg-mix-btn").click()
    wait_text(page, "#pg-adapters-status", "Mixed blend")
    wait_text(page, "#pg-adapters-table", "blend")
    card = page.locator("#pg-adapter-detail")
    wait_text(page, "#pg-adapter-detail", "Mixed (not trained) from")
    assert "Training time" not in card.inner_text() and "No loss curve" in card.inner_text()
    assert f"{ADAPTER} × 1" in card.inner_text() and "from-worker × 0.5" in card.inner_text()
    assert not page.locator("#pg-adapter-curve").is_visible()  # no empty chart
    assert table.evaluate(BROKEN_HEADER_WORDS) == []
    wrap = table.locator(".table-wrap")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # nothing runs off the right edge
    page.screenshot(path=str(ARTIFACTS / "adapters-mix.png"), full_page=True)

    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Settings (shared by every column)").click()
    for _ in range(30):  # Compare's lists follow through their own redraw event
        if {"blend", "from-worker", ADAPTER} <= set(options(page, "pg-compare-other-pick")):
            break
        page.wait_for_timeout(500)
    assert {"blend", "from-worker", ADAPTER} <= set(options(page, "pg-compare-other-pick"))
    page.get_by_role("tab", name="Adapters").click()
    pick(page, "pg-adapter-pick", "from-worker")
    page.get_by_text("Rename · delete · export · merge into the base").click()
    page.locator("#pg-adapter-new-name textarea").fill("renamed")
    page.locator("#pg-adapter-rename").click()
    wait_text(page, "#pg-adapters-table", "renamed")
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Held-out evaluation: base vs tuned").click()
    for _ in range(30):  # the evaluation's adapter list follows by itself, through its own redraw event
        choices = options(page, "pg-eval-adapter")
        if "renamed" in choices and "from-worker" not in choices:
            break
        page.wait_for_timeout(500)
    assert "renamed" in choices and "from-worker" not in choices


@pytest.mark.browser
def test_evaluation_on_yoda_shows_first_answers_and_names_its_metrics(adapter_app, page):
    """The issue: on the Yoda recipe the answers table ("First answers (Pig Latin)") was empty and word
    accuracy showed "—". Now: loss and perplexity only, a sentence why, and both models' first answers."""
    page.goto(adapter_app)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Held-out evaluation: base vs tuned").click()
    pick(page, "pg-eval-recipe", "English → Yoda-speak (test split)")
    pick(page, "pg-eval-adapter", ADAPTER)
    rows = page.locator("#pg-eval-rows input[type=number]")
    rows.fill("3")
    rows.press("Enter")
    page.locator("#pg-eval-run").click()
    status = page.locator("#pg-eval-status")
    status.get_by_text("vs base on yoda").wait_for(timeout=240_000)
    assert "word accuracy applies to Pig Latin only" in status.inner_text()
    table = page.locator("#pg-eval-table").inner_text()
    assert "perplexity" in table and "word accuracy" not in table and "—" not in table.replace("— (base)", "")
    samples = page.locator("#pg-eval-samples")
    samples.get_by_text("First 3 answers on yoda").wait_for()
    assert samples.locator("[role=grid]").get_attribute("aria-rowcount") == "4"  # header + 3 answers
    # The tuned column is on the page, not cut off at the right edge.
    assert samples.locator(".table-wrap").evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert samples.locator("th").last.inner_text().strip() == ADAPTER
    page.locator("#pg-eval-plot .main-svg").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "compare-eval-yoda.png"), full_page=True)
