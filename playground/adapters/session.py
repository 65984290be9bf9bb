"""A browser session's own adapter over the one shared model (a room of students on one server).

The server has one *default* adapter (what `AdapterManager.activate` / the /adapter_activate endpoint set);
a session follows it until it picks its own. A pick changes only that session's outputs: every model call
of the session runs inside `AdapterManager.using(name)`, which switches PEFT's active adapter for the length
of the call under the model lock and switches back after (a `set_adapter` call, no reload), so the
projector's answers never change because a student activated something.

`AdapterView` is what the decode and compare code see instead of the ModelStore: the same `use()`,
`revision` and `current`, with the session's adapter switched on inside `use()`, and a revision that
includes the adapter so caches never mix two adapters' logits.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from playground.model.store import LoadedModel
from playground.model.turns import Urgency

if TYPE_CHECKING:
    from playground.adapters.live import AdapterManager


@dataclass(frozen=True)
class AdapterChoice:
    """What one browser session runs: the server's default adapter (follow) or its own pick (None = base)."""

    name: str | None = None
    follow: bool = True  # True until the session activates something itself

    @classmethod
    def pick(cls, name: str | None) -> "AdapterChoice":
        return cls(name=name or None, follow=False)

    def resolve(self, server_default: str | None) -> str | None:
        return server_default if self.follow else self.name

    def label(self, server_default: str | None) -> str:
        """For the header: which adapter, and whose choice it is."""
        name = self.resolve(server_default) or "base (no adapter)"
        return f"{name} (server default)" if self.follow else f"{name} (this browser)"


class AdapterView:
    """The parts of ModelStore that decode/compare code use, with one adapter switched on inside `use()`."""

    def __init__(self, manager: "AdapterManager", name: str | None) -> None:
        self.manager, self.name = manager, name
        self.store = manager.store

    @contextlib.contextmanager
    def use(self, level: Urgency | None = None) -> Iterator[LoadedModel]:
        with self.manager.using(self.name, level) as lm:  # a read: the session's adapter on, then back
            yield lm

    reading = use

    def more_urgent_waiting(self) -> bool:
        return self.store.more_urgent_waiting()

    def yield_turn(self) -> bool:
        return self.store.yield_turn()

    @property
    def revision(self) -> tuple[int, str | None]:
        return self.store.revision, self.name

    @property
    def current(self) -> LoadedModel:
        """The loaded model's facts as this session sees them (its adapter as the active one)."""
        return dataclasses.replace(self.store.current, active_adapter=self.name)
