"""The app's services, created once in app.py and handed to every tab (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from playground.models import ModelStore


@dataclass
class Services:
    store: ModelStore
    data_dir: Path

    @classmethod
    def create(cls, store: ModelStore, data_dir: Path) -> "Services":
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(store=store, data_dir=data_dir)
