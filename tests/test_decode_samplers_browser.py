"""The Decode tab's samplers in a real browser and the API, on the shared app: one waterfall row per active
stage, branching from a token and from a beam node, and /next_token's waterfall with every sampler."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS
from test_decode_browser import _click_in_menu, _open_decode, _set, _wait_title


def _waterfall_titles(page) -> list[str]:
    return page.locator("#decode-waterfall .annotation-text").all_text_contents()


@pytest.mark.browser
def test_more_samplers_draw_one_waterfall_row_per_active_stage(app_url, page):
    _open_decode(page, app_url, 1)
    page.wait_for_function("document.querySelectorAll('#decode-waterfall .annotation').length === 2")
    assert [t.split(" · ")[0] for t in _waterfall_titles(page)] == ["1. raw", "2. top-k"]  # today's default
    page.locator("#decode-more").get_by_text("More samplers").click()
    _set(page, "decode-typical", 0.9)
    page.wait_for_function("document.querySelectorAll('#decode-waterfall .annotation').length === 3")
    box = page.locator("#decode-banned textarea, #decode-banned input").first
    box.fill("Paris")
    box.press("Enter")
    page.wait_for_function("document.querySelectorAll('#decode-waterfall .annotation').length === 4")
    titles = _waterfall_titles(page)
    # generate()'s order
    assert [t.split(" · ")[0] for t in titles] == ["1. raw", "2. banned", "3. top-k", "4. typical"]
    assert "␣Paris" in titles[1] and "tokens left" in titles[1] and "removed 2" in titles[1]
    assert "typical_p 0.9" in titles[3]
    legend = page.locator("#decode-waterfall .legendtext").all_text_contents()
    assert "removed by banned" in legend and "kept" in legend
    _wait_title(page, "Next-token probabilities · T=1, top-k 50, 2 banned sequences, typical 0.9")
    # a bad word list is refused with a sentence naming the field, and the page keeps working
    box.fill("<|im_end|>")
    box.press("Enter")
    page.wait_for_selector(".toast-body")
    assert "banned_words" in page.locator(".toast-body").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "decode-waterfall.png"), full_page=True)


@pytest.mark.browser
def test_branch_from_a_token_and_from_a_beam_node(app_url, page):
    _open_decode(page, app_url, 1)
    for n in (1, 2, 3):
        page.locator("#decode-greedy").click()
        page.wait_for_function(f"document.querySelectorAll('#decode-text .pg-tok').length === {n}")
    token = page.locator("#decode-text .pg-tok").nth(1)
    token.hover()
    menu = token.locator(".pg-alts")
    assert menu.is_visible() and "top alternatives" in menu.inner_text()
    alt = token.locator(".pg-alt").nth(2)
    label = alt.inner_text().split()[1]  # "3. ␣and  5.0%" -> "␣and"
    _click_in_menu(token, alt)
    page.wait_for_function("document.querySelectorAll('#decode-text .pg-tok').length === 2")
    texts = page.locator("#decode-text .pg-tok").evaluate_all("els => els.map(e => e.firstChild.textContent)")
    assert texts[1] == label.replace("␣", " ")
    page.mouse.move(5, 5)  # close the menu
    first = page.locator("#decode-text .pg-tok").first
    _click_in_menu(first, first.locator(".pg-cut"))  # cut the text before the first chosen token
    page.wait_for_function("document.querySelectorAll('#decode-text .pg-tok').length === 0")

    page.get_by_role("tab", name="Beam search").click()
    _set(page, "decode-beams", 2)
    _set(page, "decode-steps", 3)
    page.locator("#decode-run-beam").click()
    page.wait_for_selector("#decode-tree .annotation")
    page.wait_for_timeout(1000)
    marker = page.locator("#decode-tree .scatterlayer .trace .points path").nth(3)
    marker.scroll_into_view_if_needed()
    box = marker.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 6, y - 6)
    page.mouse.move(x, y, steps=3)  # plotly reports a click on the point it hovers
    page.wait_for_timeout(300)
    page.mouse.down()
    page.mouse.up()
    page.wait_for_selector("#decode-text .pg-tok")  # back in Next token, the text continued along that path
    assert page.locator("[role=tab][aria-selected=true]", has_text="Next token").count() == 1
    assert page.locator("#decode-text .pg-tok").count() >= 1
    assert "beam" in page.locator("#decode-text .pg-tok").first.get_attribute("aria-label")


def test_next_token_api_returns_the_waterfall_and_takes_every_sampler(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    out = client.predict(prompt="The capital of France is", temperature=0.7, top_k=50, top_p=0.9, top_n=5,
                         typical_p=0.95, epsilon_cutoff=0.0003, eta_cutoff=0.001, top_h=0.9, no_repeat_ngram_size=2,
                         sequence_bias="London=2", banned_words="Paris", api_name="/next_token")
    names = [s["name"] for s in out["stages"]]
    assert names == ["raw", "bias", "no-repeat", "banned", "temperature", "top-h", "top-k", "top-p", "typical",
                     "epsilon", "eta"]
    banned = out["stages"][3]
    assert banned["removed_count"] >= 1 and set(banned["removed_ids"]) <= {t["id"] for t in banned["top"]}
    assert all(t["removed"] == (t["id"] in banned["removed_ids"]) for t in banned["top"])
    assert out["stages"][-1]["kept_count"] == out["kept_count"] and len(out["rows"]) == 5
    assert all(r["token"] != "␣Paris" or not r["kept"] for r in out["rows"])
    plain = client.predict("The capital of France is", False, 0.7, 50, 0.9, 0.0, 1.0, 5, api_name="/next_token")
    assert [s["name"] for s in plain["stages"]] == ["raw", "temperature", "top-k", "top-p"]  # old call, old stages
    with pytest.raises(Exception, match=r"eta_cutoff must be in \[0, 1\)"):
        client.predict(prompt="Hi", eta_cutoff=1.0, api_name="/next_token")
    with pytest.raises(Exception, match="sequence_bias: write each entry as word=bias"):
        client.predict(prompt="Hi", sequence_bias="Paris", api_name="/next_token")
    gen = client.predict(prompt="The capital of France is", temperature=0.0, max_new_tokens=6, banned_words="Paris",
                         no_repeat_ngram_size=2, api_name="/generate")
    assert "Paris" not in gen["text"]
