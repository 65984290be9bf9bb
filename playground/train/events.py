"""The append-only JSON-lines log through which a training worker reports to the app.

The worker appends one JSON object per line, flushed at once, so a crash of the worker loses at most the line
being written; milestones (start, setup, checkpoints, the end) are also fsynced, to survive a power cut. The
app reads new complete lines incrementally. Nothing else is shared between the two processes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.json"
STOP_FILE = "STOP"
PID_FILE = "worker.pid"
LOG_FILE = "worker.log"
CHECKPOINTS = "checkpoints"
TERMINAL_STATES = ("completed", "stopped", "failed", "interrupted")
# Written every step: flushed to the OS only; an fsync per step would add disk latency to every step.
def non_finite_key(row: dict[str, Any] | None) -> str | None:
    """The first of a logged row's loss and gradient norm that is NaN/inf (what the worker's NaN guard stops on)."""
    for key in ("loss", "grad_norm"):
        value = (row or {}).get(key)
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return key
    return None


FREQUENT_EVENTS = ("log", "probe", "eval", "metrics", "samples")


class EventLog:
    """Writer side: `emit("log", step=3, loss=1.2)` appends `{"type": "log", "t": …, "step": 3, "loss": 1.2}`."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "t": round(time.time(), 3), **fields}
        line = json.dumps(event, default=_jsonable, allow_nan=True) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            if type_ not in FREQUENT_EVENTS:
                os.fsync(f.fileno())
        return event


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete lines from byte `offset`; returns (events, new offset). A half-written last line is left for the
    next call; a corrupt line is skipped rather than breaking the live view."""
    if not path.is_file():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end + 1
