"""Chat messages as plain text: one reading for every place that shows, scores or compares a row's prompt."""

from __future__ import annotations

from typing import Any


def text_of(value: Any) -> str:
    """A prompt or answer as TRL passes it (text, or a list of chat messages) -> plain text: the last user turn
    of a prompt; the turns' contents joined when there is no user turn (a completion's assistant turns)."""
    if isinstance(value, list):
        users = [m.get("content", "") for m in value if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else "".join(m.get("content", "") for m in value if isinstance(m, dict))
    return str(value)
