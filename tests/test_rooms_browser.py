"""Guess the next token with real people's tools: a presenter and a student in two browser contexts (two
sessions) on one server, and two gradio_client Clients (the load bench's way in), on a small gr.Blocks that
mounts the room tab on the bundled model's store."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import ARTIFACTS, free_port

CHART_VOTES = "document.querySelector('#room-chart .js-plotly-plot')?.data?.[0]"


@pytest.fixture(scope="module")
def room_app(bundled_store):
    import gradio as gr

    from playground.classroom.model_side import DecodeModel
    from playground.classroom.rooms import RoomHub
    from playground.decode.session import DecodeService
    from playground.ui import room_tab

    services = SimpleNamespace(store=bundled_store, rooms=RoomHub(DecodeModel(DecodeService(bundled_store))))
    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Tabs():
            with gr.Tab("Another tab", id="other"):  # first, so a ?room= link must switch tabs
                gr.Markdown("another tab")
            with gr.Tab("Guess the next token", id="room"):
                room_tab.build(services)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/", services.rooms
    demo.close(verbose=False)


@pytest.mark.browser
def test_presenter_and_student_play_a_round(room_app, browser, page):
    url, hub = room_app
    page.goto(url)
    page.get_by_role("tab", name="Guess the next token").click()
    page.locator("#room-open").click()
    page.wait_for_selector("#pg-room-code")
    code = page.locator("#pg-room-code").inner_text().strip()
    assert len(code) == 4
    assert page.locator("#pg-room-url").inner_text() == f"{url}?room={code}"
    # the QR code, drawn inline as one path (Gradio's own icons around the panel, e.g. a progress spinner
    # while the open event finishes, are other svgs: count only the QR's)
    qr = page.locator("#pg-room-join-panel svg[role=img]")
    assert qr.count() == 1 and qr.locator("path").count() == 1
    assert qr.get_attribute("aria-label") == f"QR code for {url}?room={code}"
    page.wait_for_function(f"({CHART_VOTES})?.x?.length === 10")  # the pick list's bars, no votes yet
    # F5 on the projector: a new session, but the browser kept the owner token, so the room comes back
    page.reload()
    page.get_by_role("tab", name="Guess the next token").click()
    page.locator("#pg-room-code").get_by_text(code).wait_for()
    page.locator("#room-status").get_by_text(f"Room {code}, round 1").wait_for()
    page.wait_for_function(f"({CHART_VOTES})?.x?.length === 10")

    student_ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    student = student_ctx.new_page()
    student.set_default_timeout(60_000)
    try:
        student.goto(f"{url}?room={code}")
        student.wait_for_function(f"document.querySelector('#room-code input, #room-code textarea')?.value === "
                                  f"'{code}'")
        assert student.locator("#room-code").is_visible()  # the link switched to the room tab's student view
        student.locator("#room-name input, #room-name textarea").fill("Ana")
        student.locator("#room-join-btn").click()
        student.get_by_text("which token will the model put next?").wait_for()
        assert "The rain in Spain falls mainly in the" in student.locator("#room-student-text").inner_text()
        choices = [t.strip() for t in student.locator("#room-pick label").all_inner_texts()]
        assert len(choices) == 10 and choices == sorted(choices, key=lambda s: (s.replace("␣", " ").strip().casefold(), s))
        pick = choices[-1]
        guess = student.locator("#room-guess input, #room-guess textarea")
        guess.fill("Madrid")  # typed first, then picked from the list: the pick, the last used, counts
        student.locator("#room-pick label").filter(has_text=pick).first.click()
        student.wait_for_function("document.querySelector('#room-guess input, #room-guess textarea').value === ''")
        student.locator("#room-vote").click()
        student.get_by_text(f"Your vote: “{pick}”").wait_for()
        student.reload()  # a phone reloading the page: a new Gradio session, the seat kept in localStorage
        student.wait_for_function(f"document.querySelector('#room-code input, #room-code textarea')?.value === "
                                  f"{code!r}")
        student.locator("#room-join-btn").click()
        student.get_by_text(f"Your vote: “{pick}”").wait_for()  # the same person, with the same vote

        # the presenter's chart shows the vote live (Timer), read from the plotly figure in the page
        page.wait_for_function(f"(() => {{ const d = {CHART_VOTES}; return d && d.y[d.x.indexOf({pick!r})] === 1; }})()")
        assert "1 joined, 1 voted" in page.locator("#room-status").inner_text()
        page.screenshot(path=str(ARTIFACTS / "room-presenter.png"), full_page=True)
        model_bars = "document.querySelector('#room-chart .js-plotly-plot').data[1].x.length"
        assert page.evaluate(model_bars) == 0  # the model's answer stays off the projector until the reveal...
        page.locator("#room-peek input").check()
        page.wait_for_function(f"{model_bars} === 10")  # ...unless the presenter chooses to show it

        page.locator("#room-reveal").click()
        page.locator("#room-status").get_by_text("the model chose").wait_for()  # the reveal has been handled
        chosen = hub.snapshot(code).chosen  # after the reveal anyone may see it
        assert chosen is not None
        page.locator("#room-status").get_by_text(f"the model chose “{chosen.label}”").wait_for()
        right = pick == chosen.label
        student.locator("#room-student-status").get_by_text(f"The model chose “{chosen.label}” (you guessed “{pick}”: "
                            f"{'right!' if right else 'not this time'})").wait_for()
        assert student.locator("#room-student-text .pg-room-chosen").inner_text() == chosen.text
        colours = page.evaluate("document.querySelector('#room-chart .js-plotly-plot').data[1].marker.color")
        assert colours[0] == "#f59e0b" and len(set(colours)) == 2  # the model's top token, highlighted
        student.screenshot(path=str(ARTIFACTS / "room-student.png"), full_page=True)

        page.locator("#room-next").click()
        page.locator("#room-status").get_by_text("round 2").wait_for()
        student.locator("#room-student-status").get_by_text("Round 2, Ana").wait_for()  # the student's page follows (its own Timer)
        assert chosen.text in student.locator("#room-student-text").inner_text()

        page.locator("#room-close").click()
        page.get_by_text(f"Room {code} is closed").wait_for()
        student.locator("#room-student-status").get_by_text(f"Room {code} has ended: its presenter closed it").wait_for()
    finally:
        student_ctx.close()


def test_two_clients_through_the_api(room_app):
    from gradio_client import Client

    url, _ = room_app
    presenter, student = Client(url, verbose=False), Client(url, verbose=False)
    opened = presenter.predict(prompt="The capital of France is", chat=False, api_name="/room_open")
    code = opened["code"]
    assert opened["is_presenter"] and opened["join_url"].endswith(f"/?room={code}") and len(opened["model_top"]) == 10
    joined = student.predict(code=code.lower(), name="Bo", api_name="/room_join")
    assert joined["your_name"] == "Bo" and joined["model_top"] == [] and len(joined["choices"]) == 10
    top = opened["model_top"][0]
    voted = student.predict(code=code, token=top["text"].strip().upper(), api_name="/room_vote")
    assert voted["your_vote"] == top["token"] and voted["votes"] == 1
    state = presenter.predict(code=code, api_name="/room_state")
    assert {t["token"]: t["votes"] for t in state["tally"]}[top["token"]] == 1 and state["members"] == 1

    with pytest.raises(Exception, match=f"Only the presenter who opened room {code} can reveal"):
        student.predict(code=code, api_name="/room_reveal")
    revealed = presenter.predict(code=code, api_name="/room_reveal")
    assert revealed["chosen"]["id"] == top["id"] and revealed["correct"] == 1
    assert student.predict(code=code, api_name="/room_state")["your_vote_correct"] is True
    with pytest.raises(Exception, match="Voting for round 1 is over"):
        student.predict(code=code, token="x", api_name="/room_vote")
    nxt = presenter.predict(code=code, api_name="/room_next")
    assert nxt["round"] == 2 and nxt["continuation"] == top["text"] and nxt["votes"] == 0
    with pytest.raises(Exception, match="The vote is empty"):
        student.predict(code=code, token="  ", api_name="/room_vote")
    with pytest.raises(Exception, match="room code must be 4 letters or digits"):
        student.predict(code="12", name="", api_name="/room_join")
    assert presenter.predict(code=code, api_name="/room_close") == {"code": code, "closed": True}
    with pytest.raises(Exception, match=f"Room {code} has ended: its presenter closed it"):
        student.predict(code=code, api_name="/room_state")
