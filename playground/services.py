"""The app's services, created once in app.py and handed to every tab (no module-level state)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from playground.adapters.live import AdapterManager
from playground.classroom.model_side import DecodeModel
from playground.classroom.rooms import RoomHub
from playground.decode.session import DecodeService
from playground.fsutil import PathPolicy
from playground.inside.service import InsideService
from playground.model.store import ModelStore
from playground.train.manager import TrainingManager


@dataclass
class Services:
    store: ModelStore
    data_dir: Path
    decode: DecodeService  # Decode tab: logits + KV caches keyed on store.revision
    trainer: TrainingManager  # Train tab: runs in worker processes, state in <data_dir>/runs
    adapters: AdapterManager  # Adapters/Compare tabs: <data_dir>/adapters and which one is active
    inside: InsideService  # Inside tab: logit lens / attention caches keyed on store.revision
    paths: PathPolicy  # which server folders a typed path or an API path may read (uploads, data dir, --allow-path)
    rooms: RoomHub  # Guess-the-next-token poll rooms: in memory only, forgotten on close / after idling

    @classmethod
    def create(cls, store: ModelStore, data_dir: Path, allowed_paths: Iterable[Path] = ()) -> "Services":
        data_dir.mkdir(parents=True, exist_ok=True)
        decode = DecodeService(store)
        return cls(store=store, data_dir=data_dir, decode=decode,
                   trainer=TrainingManager(data_dir, store),
                   adapters=AdapterManager.for_data_dir(store, data_dir), inside=InsideService(store),
                   paths=PathPolicy.create(data_dir, allowed_paths), rooms=RoomHub(DecodeModel(decode)))

    def stamp(self) -> str:
        """The app's state signal: it changes when the model, the active or loaded adapters, or the adapter
        library on disk change (a mix, a rename, a delete, an import, or a training worker saving one).
        Every page polls it and refreshes what depends on it; nothing else is used as an event bus."""
        return self.adapters.stamp()
