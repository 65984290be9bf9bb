"""Checking the loose values the UI and the API send: one sentence per mistake, naming the field.

Gradio-free. Numbers are checked by decode.checks (`check_int`), the same sentences as the Decode tab.
"""

from __future__ import annotations

from typing import Any

from playground.fsutil import check_str

MAX_TEXT_CHARS = 10_000  # longer texts are refused with a sentence, never truncated silently


def check_text(name: str, value: Any, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A non-empty string of at most max_chars characters, or a ValueError naming the field."""
    value = check_str(name, value)  # a number or an object is "not text", not "empty"
    if not value.strip():
        raise ValueError(f"{name} is empty: type or paste some text first.")
    if len(value) > max_chars:
        raise ValueError(f"{name} is too long: {len(value):,} characters; at most {max_chars:,} are allowed here.")
    return value
