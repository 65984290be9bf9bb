"""Server paths typed into the UI or sent to the API pass the app's PathPolicy, uploads included."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from playground.data.recipes import list_recipes
from playground.fsutil import check_str, os_reason, shown, usable_path
from playground.services import Services


def server_path(services: Services, path: str | Path, field: str) -> Path:
    """The resolved path if it lies in Gradio's upload folder, the data dir or an --allow-path folder;
    otherwise a ValueError whose sentence names the field and the rule."""
    return services.paths.check(path, field, uploads=Path(gr.utils.get_upload_folder()))


def recipe_or_server_file(services: Services, dataset: Any) -> str:
    """An evaluation API's `dataset`: a recipe id as it is, anything else a server file the policy allows."""
    dataset = check_str("dataset", dataset)
    ids = [r.id for r in list_recipes()]
    if dataset in ids:
        return dataset
    name = dataset.strip()
    if name and not any(sep in name for sep in "/\\") and not Path(name).suffix:  # no folder, no .jsonl: an id
        raise ValueError(f"dataset: {shown(name)} is not a known recipe (recipes: {', '.join(ids)}); for a file, "
                         "give its path (a .jsonl, .json or .csv file).")
    return str(server_path(services, dataset, "dataset"))


def eval_adapter(adapter: Any) -> str | None:
    """An evaluation API's `adapter`: the name, or None ('' = the server's active adapter)."""
    return check_str("adapter", adapter).strip() or None


@contextlib.contextmanager
def dataset_read(field: str) -> Iterator[None]:
    """Around an evaluation: an OSError while reading its data (unreadable, gone, name too long) becomes a
    sentence naming the field, not the OS's own text with its errno."""
    try:
        yield
    except OSError as err:
        name = Path(str(err.filename)).name if err.filename else "the file"
        raise ValueError(f"{field}: {shown(name)} could not be read ({os_reason(err)}).") from None


def held_out_dataset(services: Services, upload: str | None, recipe: str | None, field: str) -> str:
    """An evaluation form's dataset: the uploaded file (checked like any server path, named `field` in a
    refusal) if there is one, else the chosen recipe id."""
    return str(server_path(services, upload, field)) if upload else recipe or ""


def looks_like_a_path(text: str) -> bool:
    """A model/dataset source that names a local file or folder (not a hub id or a recipe id)."""
    text = (text or "").strip()
    if text.startswith(("/", ".", "~")) or text.lower().endswith((".gguf", ".jsonl", ".json", ".csv")):
        return True
    try:
        return usable_path(text, "path").exists()
    except ValueError:  # meant as a path but not a usable one: the path check that follows says why
        return True
