"""The training settings' schema: every setting is a dataclass field whose `metadata` describes it once.

The form, the coercion of form / API values with its error sentences, the validation ranges, the API
overrides and the recipe defaults are all derived from these keys (see playground.train.form):

    label    the name shown on the form and in every sentence about the field (required)
    help     one line explaining the setting (required)
    widget   number | slider | checkbox | dropdown | radio | checkboxgroup | text | file | columns
             (default: from the type: bool -> checkbox, int/float -> number, str -> text)
    choices  allowed values, or (label, value) pairs; validated unless `open` is set
    open     the choices are only suggestions (filled at run time, e.g. the model's layers)
    ge/gt/le/lt range; validated, and the bounds of a slider (a train-form slider needs lt)
    step     a slider's or number box's step
    error    a sentence template ({label}, {value}) replacing the default out-of-range sentence
    blank    the word an optional field's empty box shows; "auto" = scaled to the run's length (a recipe's
             fixed value for it is not applied)
    zero     an optional field shows None as 0 on the form and reads 0 back as None ("0 = all")
    row      consecutive fields with the same row share a line on the form
    group    consecutive fields with the same group sit in a collapsed accordion of that title
    section  the form section when not the dataclass's own (e.g. quantization under LoRA)
    sticky   picking another recipe keeps the user's value (it is not part of a recipe)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

KNOWN_KEYS = {"label", "help", "widget", "choices", "open", "ge", "gt", "le", "lt", "step", "error", "blank",
              "zero", "row", "group", "section", "sticky"}


@dataclass(frozen=True)
class Setting:
    """One flat setting: its name, the config section that owns it, its value type and its metadata."""

    name: str
    section: str  # "data" | "lora" | "train" | "" (a top-level field of TrainJobConfig)
    kind: type  # bool | int | float | str | list | dict
    optional: bool  # None is a valid value
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.meta["label"]

    def choice_values(self) -> list[Any]:
        return [c[1] if isinstance(c, tuple) else c for c in self.meta.get("choices", [])]

    def coerce(self, value: Any) -> Any:
        """A form or API value -> the field's type; a mistake becomes a sentence naming the field."""
        label = self.label
        if self.kind is bool:
            if isinstance(value, bool) or value is None or value in (0, 1):
                return bool(value)
            raise ValueError(f"{label} must be true or false (got {value!r}).")
        if self.kind in (int, float):
            if isinstance(value, bool):  # JSON true/false is not 1/0 here: {"max_steps": true} started a run
                raise ValueError(f"{label} must be a number (got {value!r}).")
            if value is None or value == "":
                if self.optional:
                    return None
                raise ValueError(f"{label} is empty.")
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer like 10**400
                raise ValueError(f"{label} must be a number (got {value!r}).") from None
            if not math.isfinite(number):
                raise ValueError(f"{label} must be a finite number (got {value}).")
            if self.kind is int:
                if number != int(number):
                    raise ValueError(f"{label} must be a whole number (got {value}).")
                number = int(number)
            if self.meta.get("zero") and number == 0:
                return None
            return number
        # API callers send any JSON: a wrong type is refused here, not later as a TypeError deep in the run.
        if self.kind is list:
            if value is None or isinstance(value, str):
                return [value] if value else []
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{label} must be a list of names (got {value!r}).")
            return list(value)
        if self.kind is dict:
            if value is None:
                return {}
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in value.items()):
                example = '{"prompt": "question"}'
                raise ValueError(f"{label} must be an object of roles to column names, e.g. {example} (got {value!r}).")
            return dict(value)
        if self.kind is str:
            if value is None:
                return ""
            if not isinstance(value, str):
                raise ValueError(f"{label} must be text (got {value!r}).")
            return value
        return value

    def check(self, value: Any) -> None:
        """Raise ValueError with the field's sentence when `value` is out of its range or choices."""
        m = self.meta
        if value is None and self.optional:
            return
        fmt = {"label": m["label"], "value": value}
        if self.kind in (int, float):
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if self.kind is int and not (is_number and isinstance(value, int)):
                lowest = m.get("ge", m.get("gt"))
                at_least = "" if lowest is None else f" of at least {lowest:g}"
                raise ValueError(f"{m['label']} must be a whole number{at_least} (got {value}).")
            if not is_number:
                raise ValueError("{label} must be a number (got {value!r}).".format(**fmt))
            # An int is always finite, and math.isfinite overflows on a huge one.
            in_range = ((isinstance(value, int) or math.isfinite(value)) and ("ge" not in m or value >= m["ge"])
                        and ("gt" not in m or value > m["gt"]) and ("le" not in m or value <= m["le"])
                        and ("lt" not in m or value < m["lt"]))
            if not in_range:
                raise ValueError((m.get("error") or _range_sentence(m, self.kind is int, value)).format(**fmt))
        elif "choices" in m and not m.get("open") and value not in self.choice_values():
            default = f"{{label}} must be one of {', '.join(map(str, self.choice_values()))} (got {{value!r}})."
            raise ValueError((m.get("error") or default).format(**fmt))


def _range_sentence(m: dict[str, Any], whole: bool, value: float) -> str:
    if "lt" in m:
        return f"{{label}} must be between {m.get('ge', m.get('gt', 0)):g} and {m['lt']:g} (got {{value}})."
    if "le" in m and value > m["le"]:  # an inclusive upper bound: name the side that was crossed
        return f"{{label}} must be at most {m['le']:g} (got {{value}})."
    if "gt" in m:
        return f"{{label}} must be greater than {m['gt']:g} (got {{value}})."
    if whole:
        return f"{{label}} must be a whole number of at least {m['ge']:g} (got {{value}})."
    return f"{{label}} must be {m['ge']:g} or more (got {{value}})."


@functools.cache
def settings_of(cls: type, section: str) -> Mapping[str, Setting]:
    """The fields of a settings dataclass that carry a label, in declaration order (cached and shared, so
    read-only: a caller that wants to change it makes its own dict)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if "label" not in f.metadata:
            continue
        kind, optional = _kind(hints[f.name])
        out[f.name] = Setting(f.name, section, kind, optional, dict(f.metadata))
    return MappingProxyType(out)


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return type(typing.get_args(hint)[0]), optional
    return (origin or hint), optional


def check_fields(obj: Any, section: str = "", skip: tuple[str, ...] = ()) -> None:
    """Validate every labelled field of a settings dataclass against its metadata (range, choices, type)."""
    for name, setting in settings_of(type(obj), section).items():
        if name not in skip:
            setting.check(getattr(obj, name))
