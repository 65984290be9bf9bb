"""The Decode tab's handler plumbing: each knob handler runs with this browser's DecodeService and one
SamplingSettings, `view_updates` maps a StepState onto the Next-token view's components (the tab and
links.py both draw through it), and `step_updates` starts a step button from the prompt box (steps.py)."""

from __future__ import annotations

import html
import inspect
from collections.abc import Callable
from typing import Any

import gradio as gr

from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState
from playground.decode.steps import Start, start_from_box
from playground.decode.views import (
    KNOB_NAMES,
    TABLE_HEADERS,
    column_widths,
    distribution_view,
    settings_from_values,
    template_view,
)
from playground.fsutil import markdown_literal
from playground.services import Services
from playground.ui.errors import warn, warned
from playground.ui.session_adapter import decode_for
from playground.ui.turns import presenter_first

KNOBS = len(KNOB_NAMES)  # the five sliders, "More samplers": always the first inputs of a knob handler


def session_values(services: Services, values: tuple) -> tuple:
    """(svc as this session sees it, SamplingSettings, *the handler's own values) from a knob handler's inputs."""
    svc = decode_for(services, values[0])
    return (svc, settings_from_values(svc, *values[1:KNOBS + 1]), *values[KNOBS + 1:])


def settings_wrapper(services: Services) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator: Gradio calls the result with this browser's adapter choice, then the knob values
    (KNOB_NAMES order), then the handler's own inputs; fn(svc, settings, *rest) runs with the DecodeService
    as this session sees it (its own adapter) and one SamplingSettings (words tokenized with the current
    model). A user mistake (a knob out of range, an emptied box) is a warning toast naming the field, and every
    view stays as it was: a raised gr.Error would mark each one "Error" until the next draw."""
    def with_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(fn):
            def stream(*values: Any) -> Any:
                yield from fn(*session_values(services, values))
            return warned(presenter_first(services.rooms, stream), 1)  # one gr.skip() skips every output

        def call(*values: Any) -> Any:
            return fn(*session_values(services, values))
        return warned(presenter_first(services.rooms, call), 1)
    return with_settings


def _table_update(headers: list[str], rows: list[list[Any]]) -> gr.Dataframe:
    return gr.Dataframe(value=rows, headers=headers, column_widths=column_widths(headers))


def view_updates(svc: DecodeService, settings: SamplingSettings, st: StepState, n: Any) -> tuple:
    """The Next-token view of `st` (the outputs state, chart, stats, table, candidates, text, waterfall)."""
    v = distribution_view(svc, st, settings, check_int("top_n", n, 1, 200))
    return (st, v.figure, v.stats, _table_update(v.headers, v.table), gr.Radio(choices=v.candidates, value=None),
            v.text_html, v.waterfall)


def notice_markdown(note: str) -> str:
    """A note for the notice line: it quotes the user's prompt, whose * or _ must not turn into formatting."""
    return markdown_literal(html.escape(note, quote=False)) if note else ""


def cleared_view(reason: str) -> tuple:
    """No state and nothing drawn (view_updates' outputs, then notice and template), the reason in the notice
    line: a prompt that cannot be used must not leave the last prompt's chart and numbers on screen as if
    they were its own, nor an error mark over every view."""
    return (None, None, "", _table_update(TABLE_HEADERS, []), gr.Radio(choices=[], value=None), "", None,
            warn(notice_markdown(reason)), "")


def drawn_updates(svc: DecodeService, settings: SamplingSettings, old: StepState | None, start: Start,
                  st: StepState, n: Any) -> tuple:
    """view_updates of `st` (stepped from `start`), then the notice and the template (redrawn only when the
    prompt changed from `old`'s)."""
    assert start.state is not None
    fresh = old is None or old.prompt != start.state.prompt
    return (*view_updates(svc, settings, st, n), notice_markdown(start.note),
            template_view(svc, start.state) if fresh else gr.skip())


def step_updates(svc: DecodeService, settings: SamplingSettings, old: StepState | None, prompt_text: Any,
                 chat: Any, n: Any, step: Callable[[StepState], StepState]) -> tuple:
    """A step button: `step` applied to the state start_from_box gives (the text built so far, or the prompt
    box afresh), drawn with its notice and template; a prompt box that cannot be used clears the view and says
    why in the notice line."""
    start = start_from_box(svc, old, prompt_text, chat)
    if start.state is None:
        return cleared_view(start.note)
    return drawn_updates(svc, settings, old, start, step(start.state), n)
