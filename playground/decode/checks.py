"""Checking loose numbers and flags from the UI and the API: one helper, one sentence per mistake, naming the field.

Gradio-free. Sliders send floats, gradio_client may send strings; these turn them into the field's type or
raise a ValueError such as `top_p must be in (0, 1] (1 = off); got 1.5.`
"""

from __future__ import annotations

import math
from typing import Any

from playground.fsutil import SHOWN_CHARS, shown


def _got(value: Any) -> str:
    """The value as the sentences quote it (repr), cut short when huge (e.g. a 400-digit integer)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else shown(value)


def _number(name: str, value: Any, rule: str) -> float:
    """`value` as a float; `rule` ("must be …") is the field's sentence for a number too large for a float."""
    if isinstance(value, bool):  # JSON true/false: float() would read it as 1/0
        raise ValueError(f"{name} must be a number; got {shown(value)}.")
    if value is None or (isinstance(value, str) and not value.strip()):  # an emptied number box, a JSON null
        raise ValueError(f"{name} is empty: it {rule}.")
    try:
        x = float(value)
    except OverflowError:  # an integer beyond any float, e.g. 10**400
        raise ValueError(f"{name} {rule}; got {_got(value)}.") from None
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {_got(value)}.") from None
    if math.isnan(x) or math.isinf(x):
        raise ValueError(f"{name} must be a finite number; got {_got(value)}.")
    return x


def check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> int:
    """An integer in [low, high] or a ValueError naming the field."""
    rule = f"must be a whole number from {low} to {high}{hint}"
    x = _number(name, value, rule)
    if not x.is_integer() or not low <= x <= high:
        raise ValueError(f"{name} {rule}; got {_got(value)}.")
    return int(x)


def check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False, high_open: bool = False,
                hint: str = "") -> float:
    """A float in [low, high] (either end open with low_open / high_open) or a ValueError naming the field."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    rule = f"must be in {span}{hint}"
    x = _number(name, value, rule)
    if x > high or x < low or (low_open and x == low) or (high_open and x == high):
        raise ValueError(f"{name} {rule}; got {_got(value)}.")
    return x


def check_bool(name: str, value: Any) -> bool:
    """True or false (1 / 0 too), else a ValueError naming the field: the text "false" is not read as true."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false (got {shown(value)}).")
