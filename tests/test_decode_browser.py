"""The Decode tab in a real browser, and its API endpoints through gradio_client, on the shared app."""

from __future__ import annotations

import pytest

from conftest import ARTIFACTS


def _top_bar_text(page) -> str:
    return page.locator("#decode-chart .bartext").first.text_content() or ""


@pytest.mark.browser
def test_prompt_slider_and_click_to_append(app_url, page):
    page.goto(app_url)
    page.get_by_role("tab", name="Decode").click()
    page.locator("#decode-prompt textarea").fill("The rain in Spain falls mainly in the")
    page.locator("#decode-run").click()
    page.wait_for_selector("#decode-chart .bartext")
    page.wait_for_function("document.querySelectorAll('#decode-chart g.point').length >= 40")  # 20 raw + 20 final
    before = _top_bar_text(page)
    assert before.endswith("%")
    assert page.locator("#decode-table [role=grid]").get_attribute("aria-rowcount") == "21"  # header + 20 rows

    # a lower temperature sharpens the distribution: the top bar's value text changes
    number = page.locator("#decode-temperature input[type=number]")
    number.fill("0.3")
    number.press("Enter")
    page.wait_for_function(
        "prev => { const t = document.querySelector('#decode-chart .bartext'); return t && t.textContent !== prev; }",
        arg=before)
    after = _top_bar_text(page)
    assert float(after.rstrip("%")) > float(before.rstrip("%"))

    # clicking a candidate appends it and the text grows by one coloured token
    first = page.locator("#decode-candidates label").first
    label = first.text_content().split()[0].replace("␣", "")
    first.click()
    page.wait_for_selector("#decode-text .pg-tok")
    assert page.locator("#decode-text .pg-tok").count() == 1
    assert label in page.locator("#decode-text").inner_text()
    page.locator("#decode-greedy").click()
    page.wait_for_function("document.querySelectorAll('#decode-text .pg-tok').length === 2")
    page.screenshot(path=str(ARTIFACTS / "decode.png"), full_page=True)


def test_next_token_api_and_validation(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    out = client.predict("The capital of France is", False, 0.7, 50, 0.9, 0.0, 1.0, 10, api_name="/next_token")
    rows = out["rows"]
    assert len(rows) == 10 and [r["rank"] for r in rows] == list(range(1, 11))
    assert {"token", "id", "prob", "final_prob", "cumulative", "rank", "kept"} <= set(rows[0])
    assert all(a["cumulative"] <= b["cumulative"] for a, b in zip(rows, rows[1:]))
    # (the shared app may carry another tab's adapter, so no assertion on which word comes first)
    assert rows[0]["kept"] and rows[0]["final_prob"] >= rows[1]["final_prob"]
    assert all(r["kept"] == (r["final_prob"] > 0) for r in rows) and sum(r["final_prob"] for r in rows) <= 1 + 1e-5

    with pytest.raises(Exception, match="top_p"):
        client.predict("The capital of France is", False, 0.7, 50, 1.5, 0.0, 1.0, 10, api_name="/next_token")
    with pytest.raises(Exception, match="temperature"):
        client.predict("Hi", False, -1, 50, 1.0, 0.0, 1.0, 10, api_name="/next_token")
    with pytest.raises(Exception, match="num_beams"):
        client.predict("Hi", 0, 3, 1.0, False, api_name="/beam_search")
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", False, 1.0, 50, 1.0, 0.0, 1.0, 10, api_name="/next_token")
    # the app keeps working after bad input
    greedy = client.predict(prompt="The capital of France is", temperature=0.0, max_new_tokens=4, seed=0,
                            api_name="/generate")
    assert len(greedy["tokens"]) <= 4 and greedy["text"].startswith(greedy["tokens"][0]["token"].replace("␣", " "))
