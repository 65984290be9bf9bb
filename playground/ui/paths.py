"""Server paths typed into the UI or sent to the API pass the app's PathPolicy, uploads included."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from playground.data.recipes import list_recipes
from playground.services import Services


def server_path(services: Services, path: str | Path, field: str) -> Path:
    """The resolved path if it lies in Gradio's upload folder, the data dir or an --allow-path folder;
    otherwise a ValueError whose sentence names the field and the rule."""
    return services.paths.check(path, field, uploads=Path(gr.utils.get_upload_folder()))


def recipe_or_server_file(services: Services, dataset: str) -> str:
    """An evaluation API's `dataset`: a recipe id as it is, anything else a server file the policy allows."""
    if dataset in {r.id for r in list_recipes()}:
        return dataset
    return str(server_path(services, dataset, "dataset"))


def held_out_dataset(services: Services, upload: str | None, recipe: str | None, field: str) -> str:
    """An evaluation form's dataset: the uploaded file (checked like any server path, named `field` in a
    refusal) if there is one, else the chosen recipe id."""
    return str(server_path(services, upload, field)) if upload else recipe or ""


def looks_like_a_path(text: str) -> bool:
    """A model/dataset source that names a local file or folder (not a hub id or a recipe id)."""
    text = (text or "").strip()
    return text.startswith(("/", ".", "~")) or text.lower().endswith((".gguf", ".jsonl", ".json", ".csv")) \
        or Path(text).expanduser().exists()
