"""The presenter's browser goes first on the model (the scheduling itself is model/turns.py).

"The presenter" is the browser session that presents a Guess-the-next-token room other devices joined
(RoomHub.presenting): the page on the projector. Owning a room is not enough, or any student could open one
to jump the queue.
Its Decode steps, generations and Compare turns run at `Urgency.PRESENTER`, so a room of students working
on the same server does not make the class wait for the projector. Any other page runs at the urgency of the
call itself.

The session comes from Gradio's per-event context (the request a `gr.Request` parameter would receive), so
handlers keep their signatures, which Gradio reads to name API parameters.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

from gradio.context import LocalContext

from playground.classroom.rooms import RoomHub
from playground.model.turns import Urgency, urgency


def request_session() -> str:
    """The browser session of the event being handled ('' outside an event, e.g. in a unit test)."""
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) or ""


def is_presenter(rooms: RoomHub) -> bool:
    """True when the current event comes from the page presenting a room with an audience."""
    session = request_session()
    return bool(session) and rooms.presenting(session)


def presenter_first(rooms: RoomHub, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` (plain or generator) with its model calls at the presenter's urgency when the presenter calls it.

    A generator is entered afresh at every step (Gradio may run each step in another worker thread, where a
    context variable set at an earlier step would not hold); a worker thread started during a step copies
    the context, urgency included (decode/stream.py, compare/chat.py)."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args: Any, **kwargs: Any) -> Any:
            presenter = is_presenter(rooms)

            def turn() -> contextlib.AbstractContextManager:
                return urgency(Urgency.PRESENTER) if presenter else contextlib.nullcontext()

            iterator = fn(*args, **kwargs)  # a generator function runs nothing until the first next()
            while True:
                with turn():
                    try:
                        item = next(iterator)
                    except StopIteration:
                        return
                yield item
        return steps

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not is_presenter(rooms):
            return fn(*args, **kwargs)
        with urgency(Urgency.PRESENTER):
            return fn(*args, **kwargs)
    return call
