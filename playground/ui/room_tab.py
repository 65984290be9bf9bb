"""Guess the next token: the presenter opens a room (code + QR), students vote on the model's next token from any
browser, the chart shows the votes by the model's distribution, then its choice. Plus the /room_* API endpoints.

Layout and event wiring only; rooms live in playground/classroom/ (RoomHub, held by Services). A presenter is a
browser session (gr.Request.session_hash, one per page load) that owns the room it opened; its browser also
keeps the room's owner token (gr.BrowserState, in localStorage), so a reload of the projector page gets the room
back. A student is the seat their browser keeps (room_requests.py), with one vote per round, also after a reload
(an API client: its session). The client's host feeds the hub's per-computer caps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
from gradio.context import get_render_context

from playground.classroom.charts import room_figure
from playground.classroom.model_side import DecodeModel
from playground.classroom.page import join_html, notice_html, presenter_html, student_html, text_html
from playground.classroom.qr import qr_svg
from playground.classroom.rooms import RoomHub
from playground.classroom.views import RoomView
from playground.decode.checks import check_int
from playground.services import Services
from playground.ui import room_requests as rq
from playground.ui.errors import USER_ERRORS, api_errors, unseen_progress
from playground.ui.session_adapter import decode_for

DEFAULT_PROMPT = "The rain in Spain falls mainly in the"
PRESENTER_POLL, STUDENT_POLL = 1.0, 1.5  # seconds; a poll only reads the hub (no model call)
PRIVATE = dict(api_visibility="private")
LIVE = dict(api_visibility="private", concurrency_limit=None)  # polls: with errors.unseen_progress


def build(services: Services, session: gr.State | None = None) -> None:
    """Lay out the room tab inside the current gr.Tab."""
    hub: RoomHub = services.rooms
    here = get_render_context()  # the gr.Tab this is built in: a ?room= link switches the page to it
    outer = getattr(here, "parent", None) if isinstance(here, gr.Tab) else None

    gr.Markdown("A class poll: **open a room** and put the code or QR code on the projector; everyone **joins** from "
                "their own browser and **votes** for the token they think the model puts next. Votes are per browser, "
                "one per round, names optional; nothing is kept after the room closes.")
    with gr.Tabs() as parts:
        with gr.Tab("Presenter", id="room-presenter"):
            with gr.Row():
                prompt = gr.Textbox(label="Prompt", value=DEFAULT_PROMPT, lines=2, scale=4, elem_id="room-prompt")
                chat = gr.Checkbox(label="chat (wrap in the model's chat template)", value=False, scale=1,
                                   elem_id="room-chat")
            with gr.Row():
                open_btn = gr.Button("Open room", variant="primary", elem_id="room-open")
                reveal_btn = gr.Button("Reveal", elem_id="room-reveal", interactive=False)
                next_btn = gr.Button("Next round", elem_id="room-next", interactive=False)
                close_btn = gr.Button("Close room", variant="stop", elem_id="room-close", interactive=False)
                peek = gr.Checkbox(label="show the model's distribution before the reveal", value=False,
                                   elem_id="room-peek")
            with gr.Row():
                with gr.Column(scale=1, min_width=240):
                    join_panel = gr.HTML(elem_id="room-join")
                with gr.Column(scale=3):
                    p_text = gr.HTML(elem_id="room-text")
                    p_status = gr.HTML(elem_id="room-status")
                    chart = gr.Plot(label="Votes and the model's distribution", elem_id="room-chart")
            room_code = gr.State("")  # the code of the room this page presents
            owner_key = gr.BrowserState({}, storage_key="pg-room-owner")  # {"owner": token}: survives a reload
            shown = gr.State(-1)      # the room version on screen: a poll redraws only when it changed
            p_timer = gr.Timer(PRESENTER_POLL, active=False)
        with gr.Tab("Student", id="room-student"):
            with gr.Row():
                s_code = gr.Textbox(label="Room code", max_lines=1, scale=1, elem_id="room-code",
                                    placeholder="e.g. K7QX")
                s_name = gr.Textbox(label="Your name (optional)", max_lines=1, scale=2, elem_id="room-name")
                join_btn = gr.Button("Join", variant="primary", scale=1, elem_id="room-join-btn")
            s_text = gr.HTML(elem_id="room-student-text")
            with gr.Column(visible=False) as ballot:
                with gr.Row():
                    pick = gr.Radio(label="Pick the next token (␣ is a space)", choices=[], scale=3,
                                    elem_id="room-pick")
                    typed = gr.Textbox(label="…or type your guess", max_lines=1, scale=1, elem_id="room-guess")
                vote_btn = gr.Button("Vote", variant="primary", elem_id="room-vote")
            s_status = gr.HTML(elem_id="room-student-status")
            seat = gr.State({})  # {"code", "round", "key"}: the room this page joined and what it shows
            student_key = gr.BrowserState({}, storage_key="pg-room-seat")  # {"seat": id}: one person across reloads
            s_timer = gr.Timer(STUDENT_POLL, active=False)

    presenter_buttons = (reveal_btn, next_btn, close_btn)

    def presenter_view(view: RoomView, show: bool) -> dict:
        return {p_text: text_html(view), p_status: presenter_html(view), chart: room_figure(view, bool(show)),
                shown: view.version, reveal_btn: gr.Button(interactive=not view.revealed),
                next_btn: gr.Button(interactive=view.revealed)}

    def presenter_gone(message: str) -> dict:
        return {room_code: "", shown: -1, p_timer: gr.Timer(active=False), join_panel: "", chart: None,
                p_status: notice_html(message), **{b: gr.Button(interactive=False) for b in presenter_buttons}}

    def presenting(view: RoomView, show: bool, request: gr.Request | None) -> dict:
        """The whole presenter view of a room this page (now) presents: on open, and on a reload."""
        url = rq.url(request, view.code)
        return {**presenter_view(view, show), room_code: view.code, join_panel: join_html(view.code, url, qr_svg(url)),
                p_timer: gr.Timer(active=True), close_btn: gr.Button(interactive=True),
                owner_key: {"owner": view.owner_token}}

    def on_open(text: str, use_chat: bool, show: bool, key: Any, request: gr.Request, choice: Any = None) -> dict:
        try:  # the browser's old token closes its room from before a reload too: one room per presenter
            # the model as this browser runs it (its own adapter), not the server's default
            model = DecodeModel(decode_for(services, choice)) if session is not None else None
            view = hub.open(text, use_chat, rq.session(request), host=rq.host(request), token=rq.owner_token(key),
                            model=model)
        except USER_ERRORS as err:
            return {p_status: notice_html(f"⚠️ {err}")}
        return presenting(view, show, request)

    def presenter_action(action: Callable[[str, str, str], RoomView], quiet: bool = False) -> Callable[..., dict]:
        def handler(code: str, show: bool, key: Any, request: gr.Request) -> dict:
            if not code:
                return {p_status: gr.skip()} if quiet else presenter_gone("Open a room first.")
            try:
                return presenter_view(action(code, rq.session(request), rq.owner_token(key)), show)
            except USER_ERRORS as err:
                if hub.owned_by(rq.session(request), rq.owner_token(key)) != code:  # closed or expired meanwhile
                    return presenter_gone(f"⚠️ {err}")
                return {p_status: notice_html(f"⚠️ {err}")}
        return handler

    def on_close(code: str, key: Any, request: gr.Request) -> dict:
        cleared: dict = {}
        try:
            if code:
                hub.close(code, rq.session(request), rq.owner_token(key))
                cleared = {owner_key: {}}  # only when it was this token's room: another tab may hold a newer one
        except USER_ERRORS:
            pass  # already gone: closing is what was asked
        return {**presenter_gone(f"Room {code} is closed: its prompt, names and votes are forgotten."
                                 if code else ""), **cleared}

    def on_presenter_tick(code: str, seen: int, show: bool, key: Any, request: gr.Request) -> Any:
        if not code:
            return {p_timer: gr.Timer(active=False)}
        try:
            view = hub.snapshot(code, rq.session(request), rq.owner_token(key))
        except USER_ERRORS as err:
            return presenter_gone(f"⚠️ {err}")
        return {shown: gr.skip()} if view.version == seen else presenter_view(view, show)

    p_in = [room_code, peek, owner_key]
    p_out = [p_text, p_status, chart, shown, reveal_btn, next_btn, close_btn, room_code, join_panel, p_timer,
             owner_key]
    open_btn.click(on_open, [prompt, chat, peek, owner_key, *([session] if session else [])], p_out, **PRIVATE)
    reveal_btn.click(presenter_action(hub.reveal), p_in, p_out, **PRIVATE)
    next_btn.click(presenter_action(hub.next_round), p_in, p_out, **PRIVATE)
    peek.change(presenter_action(hub.snapshot, quiet=True), p_in, p_out, **PRIVATE)
    close_btn.click(on_close, [room_code, owner_key], p_out, **PRIVATE)
    p_timer.tick(on_presenter_tick, [room_code, shown, peek, owner_key], p_out, **unseen_progress(shown), **LIVE)

    def on_key(key: Any, code: str, show: bool, request: gr.Request) -> dict:
        """A browser keeping a live room's owner token gets its presenter view back (a reloaded projector).
        Not on the page's load: BrowserState reads localStorage when its tab is first drawn, which for a tab
        other than the first comes later, and then fires this change."""
        if not rq.owner_token(key) or code:  # nothing kept, or this page presents its room already (set by Open)
            return {room_code: gr.skip()}
        view = hub.resume(rq.owner_token(key), rq.session(request))
        return presenting(view, show, request) if view is not None else {room_code: gr.skip()}

    owner_key.change(on_key, [owner_key, room_code, peek], p_out, **PRIVATE)

    def student_view(view: RoomView, state: dict) -> dict:
        key = f"{view.round}|{view.revealed}|{view.your_vote}"
        out: dict = {s_status: student_html(view), s_text: text_html(view),
                     seat: {"code": view.code, "round": view.round, "key": key},
                     vote_btn: gr.Button(interactive=not view.revealed)}
        if state.get("round") != view.round or state.get("code") != view.code:  # a new round: a new list
            out.update({pick: gr.Radio(choices=list(view.choices), value=None), typed: ""})
        return out

    def student_gone(message: str) -> dict:
        return {seat: {}, s_timer: gr.Timer(active=False), ballot: gr.Column(visible=False),
                s_status: notice_html(message)}

    def on_join(code: str, name: str, state: dict, key: Any, request: gr.Request) -> dict:
        key = rq.seat_key(key)  # the seat this browser kept, or a new one it keeps from now on
        try:
            view = hub.join(code, key["seat"], name, rq.host(request))
        except USER_ERRORS as err:
            return {s_status: notice_html(f"⚠️ {err}")}
        return {**student_view(view, state or {}), s_code: view.code, ballot: gr.Column(visible=True),
                s_timer: gr.Timer(active=True), student_key: key}

    def on_vote(choice: str | None, guess: str, state: dict, key: Any, request: gr.Request) -> dict:
        state = state or {}
        if not state.get("code"):
            return {s_status: notice_html("⚠️ Join a room first: type its code and press Join.")}
        # Whichever the student used last wins: a pick from the list clears the typed box (pick.input below)
        # and a vote clears it too, so a typed guess counts only while it is the latest thing entered.
        try:
            view = hub.vote(state["code"], rq.student(key, request), guess if (guess or "").strip() else choice,
                            rq.host(request), round_no=int(state.get("round") or 0))  # the round on screen
        except USER_ERRORS as err:
            return {s_status: notice_html(f"⚠️ {err}")}
        return {**student_view(view, state), typed: ""}

    def on_student_tick(state: dict, key: Any, request: gr.Request) -> Any:
        state = state or {}
        if not state.get("code"):
            return {s_timer: gr.Timer(active=False)}
        try:
            view = hub.snapshot(state["code"], rq.student(key, request))
        except USER_ERRORS as err:
            return student_gone(f"⚠️ {err}")
        if state.get("key") == f"{view.round}|{view.revealed}|{view.your_vote}":
            return {seat: gr.skip()}
        return student_view(view, state)

    def on_load(request: gr.Request) -> dict:
        """A join link (?room=CODE) fills in the code and opens the student view."""
        code = str(dict(request.query_params).get("room", "") if request is not None else "").strip()[:12]
        if not code:
            return {s_code: gr.skip()}
        out = {s_code: code, parts: gr.Tabs(selected="room-student")}
        if isinstance(outer, gr.Tabs) and here.id is not None:
            out[outer] = gr.Tabs(selected=here.id)
        return out

    s_out = [s_status, s_text, seat, vote_btn, pick, typed, s_code, ballot, s_timer]
    join_btn.click(on_join, [s_code, s_name, seat, student_key], [*s_out, student_key], **PRIVATE)
    s_code.submit(on_join, [s_code, s_name, seat, student_key], [*s_out, student_key], **PRIVATE)
    vote_btn.click(on_vote, [pick, typed, seat, student_key], s_out, **PRIVATE)
    typed.submit(on_vote, [pick, typed, seat, student_key], s_out, **PRIVATE)
    pick.input(None, None, typed, js="() => ''")  # in the browser: picking clears a typed guess at once
    s_timer.tick(on_student_tick, [seat, student_key], s_out, **unseen_progress(seat), **LIVE)
    load_out = [s_code, parts] + ([outer] if isinstance(outer, gr.Tabs) else [])
    gr.on(None, on_load, None, load_out, queue=False, **PRIVATE)
    _register_api(hub)


def _register_api(hub: RoomHub) -> None:
    """Named endpoints for gradio_client (one Client = one session = one person); mistakes come back as a
    sentence. Each returns the room as the caller may see it (RoomView.as_api)."""

    @api_errors
    def room_open(prompt: str, chat: bool = False, request: gr.Request | None = None) -> dict:
        """Open a room on a prompt (this client presents it; its previous room closes). Adds join_url."""
        view = hub.open(prompt, chat, rq.session(request), host=rq.host(request))
        return {**view.as_api(), "join_url": rq.url(request, view.code)}

    @api_errors
    def room_join(code: str, name: str = "", request: gr.Request | None = None) -> dict:
        """Join a room by its code; the name is optional."""
        return hub.join(code, rq.session(request), name, rq.host(request)).as_api()

    @api_errors
    def room_vote(code: str, token: str, round_no: int = 0, request: gr.Request | None = None) -> dict:
        """Vote for the next token: a token from `choices` or any text; again before the reveal replaces it.
        `round_no` (optional): the round the vote is for, refused once the room moved on (0: the current one)."""
        return hub.vote(code, rq.session(request), token, rq.host(request), check_int("round_no", round_no, 0, 10**6)
                        ).as_api()

    @api_errors
    def room_state(code: str, request: gr.Request | None = None) -> dict:
        """The room now: students see the tally and the model's choice only after the reveal."""
        return hub.snapshot(code, rq.session(request)).as_api()

    @api_errors
    def room_reveal(code: str, request: gr.Request | None = None) -> dict:
        """Presenter only: reveal the model's choice (its top-1 token); voting for the round ends."""
        return hub.reveal(code, rq.session(request)).as_api()

    @api_errors
    def room_next(code: str, request: gr.Request | None = None) -> dict:
        """Presenter only: append the revealed token and start the next round."""
        return hub.next_round(code, rq.session(request)).as_api()

    @api_errors
    def room_close(code: str, request: gr.Request | None = None) -> dict:
        """Presenter only: close the room and forget everything in it."""
        return {"code": hub.close(code, rq.session(request)), "closed": True}

    cheap = dict(concurrency_limit=None)  # these only read or write the hub (no model call), many at once
    gr.api(room_open, api_name="room_open")
    gr.api(room_next, api_name="room_next")
    for endpoint in (room_join, room_vote, room_state, room_reveal, room_close):
        gr.api(endpoint, api_name=endpoint.__name__, **cheap)
