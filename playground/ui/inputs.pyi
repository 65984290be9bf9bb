"""A slider whose typed value reaches its handler inside the slider's range, as its bar shows it.

Gradio checks a Slider's range before the handler runs: a value typed into the number box beside the bar ("5"
for a 0–2 temperature) failed with "Value 5 is greater than maximum value 2." — a sentence naming no field, as
an error that marked every output of the event "Error" — and an emptied box with a bare TypeError. The page
itself clamps the box into the range when it loses focus (an empty box becomes the minimum), so the handler
gets the value the page will show: clamped, and the minimum for an empty box.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from gradio.events import Dependency

class Slider(gr.Slider):
    """gr.Slider, drawn by Gradio's own slider (is_template), clamping instead of raising."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        value = self.minimum if payload is None else min(max(payload, self.minimum), self.maximum)
        return super().preprocess(value)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component