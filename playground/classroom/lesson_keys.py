"""The page state a lesson step may set: the shareable link's keys (classroom/links.py), checked when a lesson is
read, so a step with `top_p = 1.5` or a misspelt key is refused with a sentence, not in front of the room.

Gradio-free. A step's `state` table is a link's query with TOML values: texts, numbers and true/false.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from playground.classroom.links import DECODE_KEYS, NUMBERS, PageState, from_query

TEXT, FLAG, NUMBER, WHOLE = "a text", "true or false", "a number", "a whole number"
# key -> what its TOML value must be (every PageState field is a link key)
STATE_KEYS: dict[str, str] = {
    f.name: FLAG if f.name == "chat" else
    (WHOLE if NUMBERS[f.name][0] is int else NUMBER) if f.name in NUMBERS else TEXT
    for f in fields(PageState)
}
_IGNORED = re.compile(r"^The link's \w+ (was|were) ignored: ")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == TEXT:
        return isinstance(value, str)
    if kind == FLAG:
        return isinstance(value, bool)
    if isinstance(value, bool):  # TOML true is no number
        return False
    if kind == WHOLE:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, (int, float))


def check_state(state: dict[str, Any]) -> None:
    """Raise ValueError naming the key: an unknown key, a value of the wrong type, or one the link format refuses
    (out of the control's range, an unknown tab or view, malformed steps). The adapter's name is checked when
    the step is shown (the library changes)."""
    for key, value in state.items():
        if key not in STATE_KEYS:
            raise ValueError(f"unknown state key '{key}' (page-state keys: {', '.join(STATE_KEYS)}).")
        if not _type_ok(STATE_KEYS[key], value):
            raise ValueError(f"state key '{key}' must be {STATE_KEYS[key]}; got {value!r}.")
    for key, value in state.items():
        if key == "adapter":
            continue
        alone = {key: value, "prompt": state.get("prompt", "")} if key == "steps" else {key: value}
        _, notes = from_query(alone)
        if notes:
            raise ValueError(f"state key '{key}': {_IGNORED.sub('', notes[0])}")
    if "steps" in state and "prompt" not in state:
        raise ValueError("state key 'steps': steps continue a prompt, and the step has no 'prompt'.")
    decode = [k for k in state if k in DECODE_KEYS]
    if decode and "prompt" not in state:  # the view is drawn only for a prompt: it would keep the old settings'
        raise ValueError(f"state key '{decode[0]}' sets the Decode tab, and the step has no 'prompt': the "
                         "distribution on screen would still be the one drawn before, under other settings.")
