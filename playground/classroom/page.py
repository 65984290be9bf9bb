"""The HTML the room tab shows: the join panel (code, QR, link), the text so far and the status lines.

Gradio-free. Every piece of user or model text is escaped: names, guesses and tokens reach other people's
screens, so none of it may become markup.
"""

from __future__ import annotations

import html
import re

from playground.classroom.views import RoomView

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MAX_NAMES = 60  # names listed under the presenter's status line


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def join_url(host: str | None, proto: str | None, code: str) -> str:
    """The link students open: this server as the presenter's browser reached it (the Host header), with
    ?room=CODE, which the student view reads to fill in the code. A malformed host falls back to localhost."""
    host = (host or "").split(",")[0].strip()
    scheme = "https" if (proto or "").split(",")[0].strip().lower() == "https" else "http"
    return f"{scheme}://{host if _HOST.match(host) else 'localhost'}/?room={code}"


def join_html(code: str, url: str, qr_svg: str) -> str:
    """The presenter's join panel: the code in large letters, the QR code and the link."""
    local = any(f"//{h}" in url for h in LOCAL_HOSTS)
    hint = ("<p style='font-size:0.85em'>This link only works on this computer: for students' devices, start "
            "the app with <code>--host 0.0.0.0</code> and open it by this machine's network address.</p>"
            if local else "")
    return (f"<div id='pg-room-join-panel' style='text-align:center'>"
            f"<div style='font-size:0.9em'>Join at the link or scan, with the code</div>"
            f"<div id='pg-room-code' style='font-size:3.2em;font-weight:700;letter-spacing:0.15em;"
            f"font-family:ui-monospace,monospace'>{_esc(code)}</div>"
            f"<div style='max-width:260px;margin:0 auto'>{qr_svg}</div>"
            f"<div><a id='pg-room-url' href='{_esc(url)}' target='_blank'>{_esc(url)}</a></div>{hint}</div>")


def text_html(view: RoomView) -> str:
    """The text so far: the prompt, the tokens earlier rounds appended (yellow), then the blank to guess (after
    the reveal: the model's choice, orange)."""
    new = (f"<span style='background:#fde68a;border-radius:3px'>{_esc(view.continuation)}</span>"
           if view.continuation else "")
    blank = (f"<span class='pg-room-chosen' style='background:#f59e0b;border-radius:3px'>"
             f"{_esc(view.chosen.text)}</span>" if view.chosen else "<span style='color:#9ca3af'>▁▁?</span>")
    if view.chat:
        body = f"<div><b>User:</b> {_esc(view.prompt)}</div><div><b>Assistant:</b> {new}{blank}</div>"
    else:
        body = f"{_esc(view.prompt)}{new}{blank}"
    return (f"<div class='pg-room-text' style='font-size:1.5em;line-height:1.5;white-space:pre-wrap;"
            f"padding:8px 12px;border:1px solid var(--border-color-primary);border-radius:8px'>{body}</div>")


def _line(text: str, elem_class: str) -> str:
    return f"<div class='{elem_class}' style='font-size:1.15em;padding:4px 0'>{text}</div>"


def _people(view: RoomView) -> str:
    """The named people in the room, ✓ once they voted (names, never their votes)."""
    if not view.people:
        return ""
    names = [f"{_esc(n)}{' ✓' if voted else ''}" for n, voted in view.people[:MAX_NAMES]]
    more = f" and {len(view.people) - MAX_NAMES} more" if len(view.people) > MAX_NAMES else ""
    return f"<div class='pg-room-people' style='font-size:0.8em;color:#6b7280'>{', '.join(names)}{more}</div>"


def presenter_html(view: RoomView) -> str:
    """The presenter's status line: who is in, how many voted, and after the reveal how many guessed right."""
    people = f"{view.members} joined, {view.votes} voted"
    if view.chosen is None:
        return _line(f"Room <b>{_esc(view.code)}</b>, round {view.round}: {people}. Press <b>Reveal</b> when the "
                     f"votes are in.{_people(view)}", "pg-room-status")
    return _line(f"Round {view.round}: the model chose <b>“{_esc(view.chosen.label)}”</b> "
                 f"(p = {view.chosen.prob:.0%}); <b>{view.correct} of {view.votes}</b> guessed it. Press "
                 "<b>Next round</b> to append it.", "pg-room-status")


def student_html(view: RoomView) -> str:
    """The student's status line: their vote, and after the reveal the model's choice next to it."""
    you = f", {_esc(view.your_name)}" if view.your_name else ""
    if view.chosen is None:
        if view.your_vote is None:
            return _line(f"Round {view.round}{you}: which token will the model put next? Pick one or type your "
                         "guess, then press <b>Vote</b>.", "pg-room-status")
        return _line(f"Your vote: <b>“{_esc(view.your_vote)}”</b> (you can change it until the reveal).",
                     "pg-room-status")
    guessed = (f"you guessed “{_esc(view.your_vote)}”: {'right!' if view.your_vote_correct else 'not this time'}"
               if view.your_vote is not None else "you did not vote")
    return _line(f"The model chose <b>“{_esc(view.chosen.label)}”</b> ({guessed}). {view.correct} of "
                 f"{view.votes} guessed it. Wait for the next round.", "pg-room-status")


def notice_html(text: str) -> str:
    """A refusal or a notice as a status line (the sentence carries the meaning)."""
    return _line(_esc(text), "pg-room-status")
