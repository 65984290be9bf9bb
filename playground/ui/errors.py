"""One way for every tab to turn a user's mistake into a sentence on the page, never a traceback.

The capability packages raise ValueError (or ModelLoadError) with a sentence naming the field; the tabs
either show it in a status line (`warn`) or raise it as a `gr.Error` toast / API error (`user_errors`,
`api_errors`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from playground.model.sources import ModelLoadError

USER_ERRORS: tuple[type[Exception], ...] = (ValueError, ModelLoadError)


def warn(err: Exception | str) -> str:
    """A status-line sentence for a refused action (the sentence carries the meaning, the icon only marks it)."""
    return f"⚠️ {err}"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Inside a handler: a user's mistake becomes a `gr.Error` with the same sentence."""
    try:
        yield
    except USER_ERRORS as err:
        raise gr.Error(str(err)) from err


def api_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a handler (plain or generator) so user mistakes reach the page / API client as `gr.Error`.

    `functools.wraps` keeps the signature, which Gradio reads to name the API parameters.
    """
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with user_errors():
                yield from fn(*args, **kwargs)
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return fn(*args, **kwargs)
    return wrapper


def warned(fn: Callable[..., Any], outputs: int) -> Callable[..., Any]:
    """A private handler whose mistakes become a warning toast while its `outputs` stay as they were: a raised
    gr.Error would also mark every output "Error" until the next run (the views name what they were run for)."""
    def skips() -> Any:
        return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except (*USER_ERRORS, gr.Error) as err:
                gr.Warning(getattr(err, "message", None) or str(err))
                yield skips()
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (*USER_ERRORS, gr.Error) as err:
            gr.Warning(getattr(err, "message", None) or str(err))
            return skips()
    return wrapper


def unseen_progress(state: gr.State) -> dict[str, Any]:
    """Listener options for an event nobody clicked (a Timer's poll, a State-triggered redraw): no progress drawn.
    Gradio 6 drew its timer ("0.2s", "queue: 1/1") over every output of such an event even with
    show_progress="hidden"; shown on a State, which is never drawn, it appears nowhere."""
    return dict(show_progress="hidden", show_progress_on=[state])
