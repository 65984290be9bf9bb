"""Stopping a running generate() from outside: the one StoppingCriteria the Decode and Compare tabs share."""

from __future__ import annotations

import threading
from typing import Any

import torch
from transformers import StoppingCriteria


class Cancel(StoppingCriteria):
    """Stops generate() at the next token once `event` is set (browser closed, Stop pressed)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
