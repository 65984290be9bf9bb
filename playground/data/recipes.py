"""Bundled training recipes: `assets/datasets/recipes.json` lists each dataset with its training defaults."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "datasets"


@dataclass(frozen=True)
class Recipe:
    id: str
    title: str
    description: str
    train: Path
    test: Path
    probe: str
    defaults: dict[str, Any] = field(default_factory=dict)  # flat training settings, see apply_overrides
    # Settings a CUDA GPU uses instead of `defaults` (recipes are sized for a 2-core CPU; a GPU can do more per step).
    gpu_defaults: dict[str, Any] = field(default_factory=dict)

    def defaults_for(self, device_type: str) -> dict[str, Any]:
        """The training defaults on this device: `defaults`, with `gpu_defaults` on top on a CUDA GPU."""
        return {**self.defaults, **(self.gpu_defaults if device_type == "cuda" else {})}



def list_recipes(assets: Path = ASSETS) -> list[Recipe]:
    path = assets / "recipes.json"
    if not path.is_file():
        return []
    return [Recipe(id=r["id"], title=r["title"], description=r.get("description", ""), train=assets / r["train"],
                   test=assets / r["test"], probe=r.get("probe", ""), defaults=dict(r.get("defaults") or {}),
                   gpu_defaults=dict(r.get("gpu_defaults") or {}))
            for r in json.loads(path.read_text(encoding="utf-8"))]


def get_recipe(recipe_id: str, assets: Path = ASSETS) -> Recipe:
    for recipe in list_recipes(assets):
        if recipe.id == recipe_id:
            return recipe
    known = ", ".join(r.id for r in list_recipes(assets)) or "none"
    raise ValueError(f"Unknown recipe {recipe_id!r} (bundled recipes: {known}).")
