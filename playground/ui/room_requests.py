"""What the room tab reads from a request and from the browser's keys (gr.BrowserState, in localStorage): the
page's session, the client's host, the presenter's owner token and the student's seat.

A seat is a random id the student's browser keeps, so a reloaded phone (a new Gradio session) rejoins the room
as the same person, with the same vote, instead of adding one more member and a second vote to the counts.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import gradio as gr

from playground.classroom.page import join_url

SEAT = re.compile(r"seat-[A-Za-z0-9_-]{22}")  # "seat-" + secrets.token_urlsafe(16): never a session hash


def session(request: gr.Request | None) -> str:
    return (request.session_hash or "") if request is not None else ""


def host(request: gr.Request | None) -> str:
    client = getattr(request, "client", None) if request is not None else None
    return str(getattr(client, "host", "") or "")


def owner_token(key: Any) -> str:
    """The owner token in the browser's key: a dict, because BrowserState does not store a falsy value, so {}
    is how a closed room's token is cleared."""
    return str(key.get("owner", "")) if isinstance(key, dict) else ""


def _seat(key: Any) -> str | None:
    seat = key.get("seat") if isinstance(key, dict) else None
    return seat if isinstance(seat, str) and SEAT.fullmatch(seat) else None


def seat_key(key: Any) -> dict[str, str]:
    """The student key to keep: the browser's seat, or a new one when it has none (or a tampered one)."""
    return {"seat": _seat(key) or "seat-" + secrets.token_urlsafe(16)}


def student(key: Any, request: gr.Request | None) -> str:
    """Who the student page is in the room: its browser's seat, else (no seat kept yet) its session."""
    return _seat(key) or session(request)


def url(request: gr.Request | None, code: str) -> str:
    headers = request.headers if request is not None else {}
    return join_url(headers.get("x-forwarded-host") or headers.get("host"), headers.get("x-forwarded-proto"), code)
