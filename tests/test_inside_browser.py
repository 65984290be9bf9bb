"""The Inside tab in a real browser (each chart drawn) and its API endpoints through gradio_client, on a small
gr.Blocks of its own that mounts the tab on the bundled model's store."""

from __future__ import annotations

import pytest
from conftest import ARTIFACTS, free_port


@pytest.fixture(scope="module")
def inside_url(bundled_store, tmp_path_factory):
    import gradio as gr

    from playground.services import Services
    from playground.ui import inside_tab

    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab("Inside the model", id="inside"):
                # A page that follows the server's adapter (gr.State(None)), with an empty adapter library
                services = Services.create(bundled_store, tmp_path_factory.mktemp("inside-data"))
                inside_tab.build(services, gr.State(None))
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close(verbose=False)


def _count(page, selector: str) -> int:
    return page.locator(selector).count()


@pytest.mark.browser
def test_each_chart_is_drawn(inside_url, page):
    page.goto(inside_url)
    page.locator("#inside-lens-run").click()
    page.wait_for_selector("#inside-lens-top g.hm")
    page.wait_for_selector("#inside-lens-grid g.hm")
    page.get_by_text("The model's next token is").wait_for()
    assert "Paris" in page.locator("#inside-lens-summary").inner_text()
    assert "␣Paris" in page.locator("#inside-lens-top").inner_text()  # the cell labels are drawn
    assert page.locator("#inside-lens-table [role=grid]").get_attribute("aria-rowcount") == "32"  # header + 31
    page.screenshot(path=str(ARTIFACTS / "inside-lens.png"), full_page=True)

    page.get_by_role("tab", name="Attention").click()
    page.locator("#inside-attn-run").click()
    page.wait_for_selector("#inside-attn-map g.hm")
    page.wait_for_selector("#inside-attn-last g.point")
    page.wait_for_function("document.querySelectorAll('#inside-attn-heads g.hm').length === 9")  # 9 heads
    assert _count(page, "#inside-attn-last g.point") == 5  # one bar per prompt token ("The capital of France is")
    assert "average over heads" in page.locator("#inside-attn-map .gtitle").text_content()
    number = page.locator("#inside-head input[type=number]")
    number.fill("3")
    number.press("Enter")
    page.wait_for_function("(document.querySelector('#inside-attn-map .gtitle')?.textContent || '').includes('head 3')")
    assert "head 3" in page.locator("#inside-attn-summary").inner_text()
    page.screenshot(path=str(ARTIFACTS / "inside-attention.png"), full_page=True)

    page.get_by_role("tab", name="Tokens").click()
    page.locator("#inside-tok-run").click()
    page.wait_for_selector("#inside-tok-chips .pg-inside-tok")
    assert _count(page, "#inside-tok-chips .pg-inside-tok") > 10
    assert "tokens" in page.locator("#inside-tok-summary").inner_text()
    page.locator("#inside-tok-template").get_by_text("<|im_start|>").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "inside.png"), full_page=True)

    # a bad input gives a sentence on the page, and the tab keeps working
    page.locator("#inside-tok-text textarea").fill("   ")
    page.locator("#inside-tok-run").click()
    page.get_by_text("text is empty").wait_for()


def test_api_endpoints_and_bad_inputs(inside_url):
    from gradio_client import Client

    client = Client(inside_url, verbose=False)
    lens = client.predict(prompt="The capital of France is", chat=False, api_name="/logit_lens")
    assert len(lens["layers"]) == 31 and lens["layers"][0]["name"] == "embeddings"
    assert {"token", "token_id", "prob"} == set(lens["layers"][-1]["top"][0])
    assert lens["answer"]["token"] == lens["layers"][-1]["top"][0]["token"]
    attn = client.predict(prompt="The capital of France is", chat=False, layer=3, head=2, api_name="/attention")
    assert attn["layer"] == 3 and attn["head"] == 2 and len(attn["weights"]) == len(attn["tokens"])
    assert abs(sum(attn["weights"][-1]) - 1) < 1e-4
    tok = client.predict(text="Hello world", api_name="/tokenize")
    assert tok["count"] == len(tok["ids"]) == 2 and tok["tokens"][1]["token"] == "␣world"

    with pytest.raises(Exception, match="prompt is empty"):
        client.predict(prompt="  ", chat=False, api_name="/logit_lens")
    with pytest.raises(Exception, match="text is too long"):
        client.predict(text="x" * 20_000, api_name="/tokenize")
    with pytest.raises(Exception, match="layer must be a whole number from 1 to 30"):
        client.predict(prompt="Hi", chat=False, layer=31, head=0, api_name="/attention")
    with pytest.raises(Exception, match="head must be a whole number from 0 to 9"):
        client.predict(prompt="Hi", chat=False, layer=1, head=10, api_name="/attention")
    assert client.predict(text="ok", api_name="/tokenize")["count"] >= 1  # still serving
