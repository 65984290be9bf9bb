"""Adapters + Compare tabs in a real browser, and their API endpoints, on an app of our own whose data dir
holds a random (non-identity) LoRA adapter for the bundled model."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

from conftest import ARTIFACTS, BUNDLED_DATA_DIR

ADAPTER = "random-lora"


@pytest.fixture(scope="module")
def adapter_app(start_app, bundled_checkpoint) -> str:
    """An app on the bundled model with one random LoRA for it in <data>/adapters/ (the shared bundled
    store's model is never touched: the adapter is built on a separate copy)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from playground.model.sources import BUNDLED_NAME
    from playground.model.store import fingerprint_model

    data = Path(tempfile.mkdtemp(prefix="pg-compare-data-"))
    (data / "models").mkdir(parents=True)
    for d in (BUNDLED_DATA_DIR / "models").glob("*"):  # reuse the converted weights
        if d.is_dir() and not d.name.startswith("."):
            os.symlink(d, data / "models" / d.name)
    model = AutoModelForCausalLM.from_pretrained(bundled_checkpoint, dtype=torch.float32)
    fingerprint = fingerprint_model(model)
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    with torch.no_grad():  # strong enough that the answers visibly differ
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.mul_(4.0)
    folder = data / "adapters" / ADAPTER
    peft.save_pretrained(folder)
    (folder / "playground.json").write_text(json.dumps({
        "name": ADAPTER, "kind": "trained", "base_model": BUNDLED_NAME, "base_source": "bundled",
        "base_fingerprint": fingerprint, "dataset": {"name": "pig-latin", "rows": 694, "sha256": "0" * 64},
        "settings": {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "loss_history": [{"step": i, "loss": 2.0 / i, "learning_rate": 2e-4, "grad_norm": 1.0} for i in (1, 2, 3)],
        "eval_history": [{"step": 3, "eval_loss": 1.1}], "final_train_loss": 0.67, "final_eval_loss": 1.1,
        "duration_s": 12.0, "created_at": "2025-01-01T00:00:00+00:00", "run_id": "test"}))
    return start_app(data_dir=data)


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

    page.get_by_role("tab", name="Compare").click()
    page.locator("#pg-compare-hint").get_by_text(ADAPTER).wait_for()
    page.get_by_text("Settings (shared by every column)").click()
    max_new = page.locator("#pg-compare-max-new input[type=number]")
    max_new.fill("32")
    max_new.press("Enter")
    page.locator("#pg-compare-input textarea").fill("What is the capital of France?")
    page.locator("#pg-compare-send").click()
    page.wait_for_selector("#pg-compare-diff .pg-tok", timeout=120_000)
    page.wait_for_selector("#pg-compare-diff .pg-diverge")
    base_bot = page.locator("#pg-compare-base .bot").last
    tuned_bot = page.locator("#pg-compare-tuned .bot").last
    base_text, tuned_text = base_bot.inner_text().strip(), tuned_bot.inner_text().strip()
    assert base_text and tuned_text and base_text != tuned_text
    # Each tuned token is coloured by Δ log p and carries both probabilities on hover.
    first = page.locator("#pg-compare-diff .pg-tok").first
    assert "p(tuned)" in first.get_attribute("title") and "p(base)" in first.get_attribute("title")
    assert "rgba(" in first.get_attribute("style")
    assert "log p" in page.locator("#pg-compare-diff .pg-diff-legend").inner_text()
    assert page.locator("#pg-compare-tuned").get_by_text(f"adapter {ADAPTER}").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)


def test_adapter_and_compare_api(adapter_app, tmp_path):
    from gradio_client import Client

    client = Client(adapter_app, verbose=False)
    listed = client.predict(api_name="/adapters")
    assert [a["name"] for a in listed] == [ADAPTER] and listed[0]["rank"] == 8
    assert "active" in client.predict(ADAPTER, api_name="/adapter_activate")
    out = client.predict("Say hi", {"max_new_tokens": 12, "temperature": 0.8}, 3, api_name="/compare")
    assert out["adapter"] == ADAPTER and out["base_text"] and out["tuned_text"]
    assert len(out["tokens"]) >= 1 and {"token", "logp_tuned", "logp_base", "delta"} <= set(out["tokens"][0])
    again = client.predict("Say hi", {"max_new_tokens": 12, "temperature": 0.8}, 3, api_name="/compare")
    assert again == out  # same seed, same settings, same answers
    with pytest.raises(Exception, match="Unknown setting"):
        client.predict("Say hi", {"temp": 1}, 3, api_name="/compare")
    with pytest.raises(Exception, match="All mix weights are 0"):
        client.predict([ADAPTER, ADAPTER + "-x"], [0, 0], "m", "linear", api_name="/adapter_mix")
    with pytest.raises(Exception, match="path parts"):
        client.predict("../x", api_name="/adapter_activate")
    held_out = tmp_path / "held-out.jsonl"  # loss only (no generation), so this stays quick on a CPU
    held_out.write_text('{"prompt": "Capital of Italy?", "completion": "Rome."}\n'
                        '{"prompt": "Capital of Spain?", "completion": "Madrid."}\n')
    metrics = client.predict(ADAPTER, str(held_out), 60, api_name="/evaluate")
    assert metrics["rows"] == 2 and metrics["tuned"]["adapter"] == ADAPTER and metrics["base"]["adapter"] is None
    assert metrics["tuned"]["loss"] != metrics["base"]["loss"] and metrics["base"]["word_accuracy"] is None
    assert "Base model only" in client.predict("", api_name="/adapter_activate")
    with pytest.raises(Exception, match="no adapter named"):
        client.predict("ghost", api_name="/adapter_delete")
