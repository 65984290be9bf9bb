"""Checking loose numbers from the UI and the API: one helper, one sentence per mistake, naming the field.

Gradio-free. Sliders send floats, gradio_client may send strings; these turn them into the field's type or
raise a ValueError such as `top_p must be in (0, 1] (1 = off); got 1.5.`
"""

from __future__ import annotations

import math
from typing import Any


def _number(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}.") from None
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{name} must be a finite number; got {value!r}.")
    return x


def check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    """An integer in [low, high] or a ValueError naming the field."""
    x = _number(name, value)
    if not x.is_integer() or not low <= x <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}{hint}; got {value!r}.")
    return int(x)


def check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
                hint: str = "") -> float:
    """A float in [low, high] (either end open with low_open / high_open) or a ValueError naming the field."""
    x = _number(name, value)
    if x > high or x < low or (low_open and x == low) or (high_open and x == high):
        span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {span}{hint}; got {value!r}.")
    return x
