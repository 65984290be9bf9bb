"""Adapters + Compare tabs in a real browser, and their API endpoints, on an app of our own whose data dir
holds a random (non-identity) LoRA adapter for the bundled model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import ARTIFACTS, BUNDLED_DATA_DIR

ADAPTER = "random-lora"


@pytest.fixture(scope="module")
def adapter_data(bundled_checkpoint) -> Path:
    """A data dir with one random LoRA for the bundled model in <data>/adapters/ (the shared bundled store's
    model is never touched: the adapter is built on a separate copy)."""
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
    return data


@pytest.fixture(scope="module")
def adapter_app(start_app, adapter_data) -> str:
    return start_app(data_dir=adapter_data)


# Words of a table's header cells that the browser broke over two lines ("stat e", "ran k").
BROKEN_HEADER_WORDS = """el => {
  const bad = [];
  for (const th of el.querySelectorAll('th')) {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index); r.setEnd(n, m.index + m[0].length);
        if ([...r.getClientRects()].filter(x => x.width > 0).length > 1) bad.push(m[0]);
      }
    }
  }
  return bad;
}"""


def last_answer(page, column: str, timeout: float = 60_000) -> str:
    """The last answer in a Compare column once the chatbot has drawn it: until the event ends the message shows
    Gradio's "Loading content" placeholder, which the diff (another component) may outrun."""
    sel = f"#{column} .bot"
    page.wait_for_function("""s => { const b = [...document.querySelectorAll(s)].pop();
        const t = b ? b.innerText.trim() : ''; return t !== '' && !t.includes('Loading content'); }""",
                           arg=sel, timeout=timeout)
    return page.locator(sel).last.inner_text().strip()


def _pick(page, elem_id: str, option: str) -> None:
    """Choose an option of a Gradio dropdown the way a user does."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def _wait_text(page, selector: str, text: str, present: bool = True, timeout: float = 60_000) -> None:
    """Wait until the element's visible text does (or does not) contain `text`."""
    page.wait_for_function("([s, t, p]) => (document.querySelector(s)?.innerText || '').includes(t) === p",
                           arg=[selector, text, present], timeout=timeout)


def _options(page, elem_id: str) -> list[str]:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option").first.wait_for()
    names = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return names


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
    _wait_text(page, "#pg-adapters-table", "active")  # the table is redrawn by its own (queued) event

    page.get_by_role("tab", name="Compare").click()
    page.locator("#pg-compare-hint").get_by_text(ADAPTER).wait_for()
    assert "No adapter is active" not in page.locator("#pg-compare-diff").inner_text()
    assert ADAPTER in page.locator("#pg-compare-diff").inner_text()  # the placeholder names the same adapter
    note = page.locator("#pg-compare-settings-note").inner_text()
    assert "temperature 0.7" in note and "top-p 0.95" in note and "Decode tab" in note
    page.get_by_text("Settings (shared by every column)").click()
    max_new = page.locator("#pg-compare-max-new input[type=number]")
    max_new.fill("32")
    max_new.press("Enter")
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
    _wait_text(page, "#pg-model-badge", "base (no adapter) (server default)")
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
    _wait_text(page, "#pg-adapters-table", ADAPTER)
    staging = adapter_data / "adapters" / ".tmp-from-worker"  # what fsutil.atomic_dir does: write, then rename
    shutil.copytree(adapter_data / "adapters" / ADAPTER, staging)
    meta = json.loads((staging / "playground.json").read_text())
    (staging / "playground.json").write_text(json.dumps({**meta, "name": "from-worker"}))
    os.replace(staging, adapter_data / "adapters" / "from-worker")
    _wait_text(page, "#pg-adapters-table", "from-worker", timeout=15_000)  # polled, no Refresh click
    assert "from-worker" in _options(page, "pg-adapter-pick")

    page.get_by_text("Mix adapters (weighted)").click()
    _pick(page, "pg-mix-names", ADAPTER)
    _pick(page, "pg-mix-names", "from-worker")
    page.keyboard.press("Escape")
    page.locator("#pg-mix-name textarea").fill("blend")
    page.locator("#pg-mix-btn").click()
    _wait_text(page, "#pg-adapters-status", "Mixed blend")
    _wait_text(page, "#pg-adapters-table", "blend")
    card = page.locator("#pg-adapter-detail")
    _wait_text(page, "#pg-adapter-detail", "Mixed (not trained) from")
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
        if {"blend", "from-worker", ADAPTER} <= set(_options(page, "pg-compare-other-pick")):
            break
        page.wait_for_timeout(500)
    assert {"blend", "from-worker", ADAPTER} <= set(_options(page, "pg-compare-other-pick"))
    page.get_by_role("tab", name="Adapters").click()
    _pick(page, "pg-adapter-pick", "from-worker")
    page.get_by_text("Rename · delete · export · merge into the base").click()
    page.locator("#pg-adapter-new-name textarea").fill("renamed")
    page.locator("#pg-adapter-rename").click()
    _wait_text(page, "#pg-adapters-table", "renamed")
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Held-out evaluation: base vs tuned").click()
    for _ in range(30):  # the evaluation's adapter list follows by itself, through its own redraw event
        choices = _options(page, "pg-eval-adapter")
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
    _pick(page, "pg-eval-recipe", "English → Yoda-speak (test split)")
    _pick(page, "pg-eval-adapter", ADAPTER)
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


def test_adapter_and_compare_api(adapter_app, adapter_data, tmp_path):
    from gradio_client import Client

    client = Client(adapter_app, verbose=False)
    listed = {a["name"]: a for a in client.predict(api_name="/adapters")}
    assert listed[ADAPTER]["rank"] == 8
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
    rows = ('{"prompt": "Capital of Italy?", "completion": "Rome."}\n'  # two short rows: quick on a CPU
            '{"prompt": "Capital of Spain?", "completion": "Madrid."}\n')
    private = tmp_path / "teachers-notes.jsonl"  # a server file outside uploads and the data dir: refused
    private.write_text(rows)
    with pytest.raises(Exception, match="outside the folders this server may read"):
        client.predict(ADAPTER, str(private), 60, api_name="/evaluate")
    held_out = adapter_data / "held-out.jsonl"  # inside the data dir: allowed
    held_out.write_text(rows)
    metrics = client.predict(ADAPTER, str(held_out), 60, api_name="/evaluate")
    assert metrics["rows"] == 2 and metrics["tuned"]["adapter"] == ADAPTER and metrics["base"]["adapter"] is None
    assert metrics["tuned"]["loss"] != metrics["base"]["loss"] and metrics["base"]["word_accuracy"] is None
    assert metrics["metrics"] == ["loss", "perplexity"] and len(metrics["answers"]) == 2
    assert "Base model only" in client.predict("", api_name="/adapter_activate")
    with pytest.raises(Exception, match="no adapter named"):
        client.predict("ghost", api_name="/adapter_delete")


@pytest.mark.browser
def test_an_activation_in_one_browser_leaves_another_browser_alone(adapter_app, browser):
    """A room on one server: a student activating an adapter changes only the student's answers and header;
    the projector keeps the base, also after several polls, and a reload keeps each browser's own choice."""
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(adapter_app)
        pages.append(pg)
    projector, student = pages

    def settled(pg) -> None:  # the table has rows and no event of the page is still running
        pg.wait_for_function("() => document.querySelector(\"#decode-table [role=gridcell][data-row='0']\") && "
                             "![...document.querySelectorAll('.progress-text')].some(e => e.checkVisibility())")

    def top_rows(pg) -> list[str]:
        pg.get_by_role("tab", name="Decode").click()
        pg.locator("#decode-run").click()
        pg.wait_for_timeout(300)  # the run's progress shows
        settled(pg)
        return pg.locator("#decode-table [role=gridcell]").all_inner_texts()

    before = top_rows(projector)
    student.get_by_role("tab", name="Adapters").click()
    _wait_text(student, "#pg-adapters-table", ADAPTER)
    _pick(student, "pg-adapter-pick", ADAPTER)  # earlier tests left other adapters in the library
    student.locator("#pg-adapter-activate").click()
    _wait_text(student, "#pg-model-badge", f"{ADAPTER} (this browser)")
    tuned = top_rows(student)
    assert tuned != before  # the student's Decode tab runs the adapter
    projector.wait_for_timeout(5000)  # two polls of the change signal
    assert "base (no adapter) (server default)" in projector.locator("#pg-model-badge").inner_text()
    projector.locator("#decode-run").click()
    projector.wait_for_timeout(300)
    settled(projector)
    assert projector.locator("#decode-table [role=gridcell]").all_inner_texts() == before  # untouched
    for pg in pages:
        pg.context.close()


@pytest.mark.browser
def test_reward_evaluation_of_a_grpo_adapter_in_the_page_and_the_api(adapter_app, adapter_data, page):
    """Compare → Reward evaluation: a GRPO adapter (here the random LoRA, recorded as a GRPO run started from
    itself) scored by its own rewards, greedy and sampled, base vs start vs tuned; the page shows the API's
    figures (both are seeded), and bad input gets a sentence naming the field."""
    from gradio_client import Client

    folder = adapter_data / "adapters" / "rl-demo"
    shutil.copytree(adapter_data / "adapters" / ADAPTER, folder)
    meta = json.loads((folder / "playground.json").read_text())
    settings = {**meta["settings"], "method": "grpo", "start_adapter": ADAPTER, "temperature": 0.9,
                "reward_pig_latin": 1.0, "reward_length": 0.5, "length_target": 8}
    (folder / "playground.json").write_text(json.dumps({**meta, "name": "rl-demo", "settings": settings}))
    client = Client(adapter_app, verbose=False)
    api = client.predict("rl-demo", "pig-latin", 3, 2, api_name="/evaluate_rewards")
    assert api["rows"] == 3 and api["samples"] == 2 and api["temperature"] == 0.9
    assert api["rules"] == "1 × pig_latin + 0.5 × length"
    assert [(m["label"], m["adapter"]) for m in api["models"]] == [("base", None), ("start", ADAPTER),
                                                                  ("tuned", "rl-demo")]
    for m in api["models"]:  # weighted totals of the rules' means (each 0..1)
        for key, rules in (("reward", "per_rule"), ("sampled_reward", "sampled_per_rule")):
            assert m[key] == pytest.approx(m[rules]["pig_latin"] + 0.5 * m[rules]["length"])
            assert 0 <= m[rules]["pig_latin"] <= 1 and 0 <= m[rules]["length"] <= 1
    with pytest.raises(Exception, match="samples"):
        client.predict("rl-demo", "pig-latin", 3, 99, api_name="/evaluate_rewards")
    with pytest.raises(Exception, match="records no GRPO rewards"):
        client.predict(ADAPTER, "pig-latin", 3, 0, api_name="/evaluate_rewards")

    page.goto(adapter_app)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Reward evaluation (GRPO)").click()
    _pick(page, "pg-reward-adapter", "rl-demo")
    for elem, value in (("pg-reward-rows", "3"), ("pg-reward-samples", "2")):
        box = page.locator(f"#{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.locator("#pg-reward-run").click()
    page.locator("#pg-reward-status").get_by_text("held-out prompts").wait_for(timeout=240_000)
    status = page.locator("#pg-reward-status").inner_text()
    assert "rl-demo" in status and "1 × pig_latin + 0.5 × length" in status and "temperature 0.9" in status
    table = page.locator("#pg-reward-table")
    headers = [h.strip() for h in table.locator("th").all_inner_texts()]
    assert headers[:4] == ["model", "adapter", "greedy reward ↑", "sampled reward ↑ (2 a prompt, T 0.9)"]
    for r, m in enumerate(api["models"]):  # the page shows the API's (seeded) figures
        cells = [t.strip() for t in table.locator(f"[role=gridcell][data-row='{r}']").all_inner_texts()]
        assert cells[0] == m["label"]
        assert float(cells[2]) == pytest.approx(m["reward"], abs=1e-4)
        assert float(cells[3]) == pytest.approx(m["sampled_reward"], abs=1e-4)
    answers = page.locator("#pg-reward-answers")
    assert table.locator("[role=gridcell][data-row='3']").count() == 0  # three models, three rows
    assert [h.strip() for h in answers.locator("th").all_inner_texts()][:4] == ["prompt", "base", "start", "tuned"]
    assert answers.locator("[role=grid]").get_attribute("aria-rowcount") == "4"  # header + 3 prompts
    assert answers.locator(".table-wrap").evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # tuned is on the page
    page.screenshot(path=str(ARTIFACTS / "compare-reward.png"), full_page=True)
    shutil.rmtree(folder)
