"""The Model tab's load handler and model list, called directly on a tab built around the tiny Llama."""

from __future__ import annotations

import gradio as gr

from playground.services import Services
from playground.ui import model_tab


def _tab(store):
    services = Services.create(store, store.settings.data_dir)
    with gr.Blocks() as demo:
        model_tab.build(services, gr.Markdown(), gr.State(), gr.State())
    load = next(f.fn for f in demo.fns.values() if f.name == "load")
    return demo, load


def test_the_startup_folder_is_listed_and_can_be_loaded_again(tiny_store, tmp_path):
    """`--model DIR` lies outside the data dir: the policy refused it after switching away, and the list left
    it out, so the model the app started with could not be loaded again."""
    startup = tiny_store.settings.source
    demo, load = _tab(tiny_store)
    (choice,) = [c for c in demo.config["components"] if c["props"].get("elem_id") == "model-choice"]
    assert (startup, startup) in choice["props"]["choices"] and choice["props"]["value"] == startup
    status, _ = load(startup, "", progress=lambda *a, **k: None)
    assert status.startswith("Loaded **") and tiny_store.current.source == startup


def test_a_path_outside_is_refused_without_pointing_to_an_upload(tiny_store, tmp_path):
    _, load = _tab(tiny_store)
    status, _ = load(None, str(tmp_path), progress=lambda *a, **k: None)
    assert "Model path" in status and "outside the folders this server may read" in status
    assert "--allow-path DIR" in status and "Upload" not in status and "stays loaded" in status
