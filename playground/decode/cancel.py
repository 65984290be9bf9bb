"""Stopping or pausing a running generate() from outside: StoppingCriteria the Decode and Compare tabs share."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import torch
from transformers import StoppingCriteria


class Cancel(StoppingCriteria):
    """Stops generate() at the next token once `event` is set (browser closed, Stop pressed)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event if event is not None else threading.Event()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class Turns(Protocol):
    """The model store's side of giving way (model/turns.py; ModelStore and AdapterView have it)."""

    def more_urgent_waiting(self) -> bool: ...

    def yield_turn(self) -> bool: ...


class GiveWay(StoppingCriteria):
    """Between two tokens, lets a more urgent call (the presenter's step, a student's next-token) use the
    model, then carries on where it was. Never stops anything. The sampling RNG is put back after the pause,
    so the tokens are the ones an uninterrupted generate() with the same seed gives."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.turns.more_urgent_waiting():
            cpu = torch.get_rng_state()
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            self.turns.yield_turn()
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
        return torch.zeros((input_ids.shape[0],), dtype=torch.bool, device=input_ids.device)
