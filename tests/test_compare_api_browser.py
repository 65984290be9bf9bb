"""The Adapters / Compare API and what one browser's choices do to another, on the random-LoRA app of
test_compare_fixtures.py: the endpoints and their refusals, an activation that stays in its own browser, and
the reward evaluation of a GRPO adapter in the page and the API."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ARTIFACTS
from test_compare_fixtures import ADAPTER, adapter_app, adapter_data, pick, wait_text  # noqa: F401 (fixtures)


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
    wait_text(student, "#pg-adapters-table", ADAPTER)
    pick(student, "pg-adapter-pick", ADAPTER)  # earlier tests left other adapters in the library
    student.locator("#pg-adapter-activate").click()
    wait_text(student, "#pg-model-badge", f"{ADAPTER} (this browser)")
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
        assert 0 <= m["pig_latin_shape"]["word_count_share"] <= 1 and 0 <= m["pig_latin_shape"]["aligned"] <= 1
    with pytest.raises(Exception, match="samples"):
        client.predict("rl-demo", "pig-latin", 3, 99, api_name="/evaluate_rewards")
    with pytest.raises(Exception, match="records no GRPO rewards"):
        client.predict(ADAPTER, "pig-latin", 3, 0, api_name="/evaluate_rewards")

    page.goto(adapter_app)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_text("Reward evaluation (GRPO)").click()
    pick(page, "pg-reward-adapter", "rl-demo")
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
    assert headers[4:] == ["pig_latin", "right word count", "aligned", "length"] and "not better-translated" in status
    for r, m in enumerate(api["models"]):  # the page shows the API's (seeded) figures
        cells = [t.strip() for t in table.locator(f"[role=gridcell][data-row='{r}']").all_inner_texts()]
        assert cells[0] == m["label"]
        assert float(cells[2]) == pytest.approx(m["reward"], abs=1e-4)
        assert float(cells[3]) == pytest.approx(m["sampled_reward"], abs=1e-4)
        shape = m["pig_latin_shape"]  # what the Pig Latin figure is made of (the rule is among the rewards)
        assert [float(c) for c in cells[5:7]] == pytest.approx([shape["word_count_share"], shape["aligned"]], abs=1e-4)
    answers = page.locator("#pg-reward-answers")
    assert table.locator("[role=gridcell][data-row='3']").count() == 0  # three models, three rows
    assert [h.strip() for h in answers.locator("th").all_inner_texts()][:4] == ["prompt", "base", "start", "tuned"]
    assert answers.locator("[role=grid]").get_attribute("aria-rowcount") == "4"  # header + 3 prompts
    assert answers.locator(".table-wrap").evaluate("e => e.scrollWidth <= e.clientWidth + 1")  # tuned is on the page
    page.screenshot(path=str(ARTIFACTS / "compare-reward.png"), full_page=True)
    shutil.rmtree(folder)
