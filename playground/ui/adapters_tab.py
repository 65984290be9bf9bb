"""Adapters tab: the library table, a detail card with the loss curve, activate / swap / deactivate,
rename, delete, import (folder or .zip), export (.zip), merge-and-save, and weighted mixes.

Only layout and wiring: every operation is one call into `services.adapters` (playground.adapters.live).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from playground.adapters.library import LIBRARY_HEADERS, loss_curve_figure
from playground.adapters.mixing import MIX_METHODS, MixSpec
from playground.services import Services

MAX_MIX = 4  # weight sliders shown for a mix


def _warn(err: Exception) -> str:
    gr.Warning(str(err))
    return f"⚠️ {err}"


def build(services: Services, header: gr.Markdown) -> None:
    adapters = services.adapters

    def names() -> list[str]:
        return adapters.library.names()

    def refreshed(selected: str | None = None) -> tuple:
        """Table, picker, mix picker and header after any change."""
        current = names()
        pick = selected if selected in current else (adapters.active() or (current[0] if current else None))
        return (adapters.table(), gr.update(choices=current, value=pick), gr.update(choices=current),
                services.store.header_markdown())

    def detail(name: str | None) -> tuple[str, Any]:
        if not name:
            return "_No adapter selected. Train one in the Train tab or import one below._", None
        try:
            info, card = adapters.detail(name)
        except ValueError as err:
            return f"⚠️ {err}", None
        return card, loss_curve_figure(info)

    gr.Markdown("Saved LoRA adapters for the loaded base model. **Activate** one to use it in every tab "
                "(the header shows which); swapping between loaded adapters is instant, the base is never "
                "reloaded.")
    status = gr.Markdown(elem_id="pg-adapters-status")
    table = gr.Dataframe(adapters.table(), headers=LIBRARY_HEADERS, interactive=False, wrap=True,
                         label="Adapter library", elem_id="pg-adapters-table")
    with gr.Row():
        pick = gr.Dropdown(names(), value=None, label="Adapter", scale=3,
                           elem_id="pg-adapter-pick")
        refresh_btn = gr.Button("↻ Refresh", scale=1, elem_id="pg-adapters-refresh")
        activate_btn = gr.Button("Activate", variant="primary", scale=1, elem_id="pg-adapter-activate")
        base_btn = gr.Button("Base only (deactivate)", scale=1, elem_id="pg-adapter-deactivate")
    with gr.Row():
        with gr.Column(scale=2):
            card = gr.Markdown(elem_id="pg-adapter-detail")
        with gr.Column(scale=3):
            curve = gr.Plot(label="Loss curve", elem_id="pg-adapter-curve")

    with gr.Accordion("Rename · delete · export · merge into the base", open=False):
        with gr.Row():
            new_name = gr.Textbox(label="New name", scale=3, elem_id="pg-adapter-new-name")
            rename_btn = gr.Button("Rename", scale=1, elem_id="pg-adapter-rename")
        with gr.Row():
            confirm = gr.Checkbox(label="Yes, delete the selected adapter from disk", elem_id="pg-adapter-confirm")
            delete_btn = gr.Button("Delete", variant="stop", elem_id="pg-adapter-delete")
        with gr.Row():
            export_btn = gr.Button("Export as .zip", elem_id="pg-adapter-export")
            export_file = gr.File(label="Download", interactive=False, elem_id="pg-adapter-export-file")
        with gr.Row():
            merged_name = gr.Textbox(label="Merged model folder name (saved under <data-dir>/merged/)", scale=3,
                                     elem_id="pg-adapter-merge-name")
            merge_btn = gr.Button("Merge active adapter & save full model", scale=2, elem_id="pg-adapter-merge")

    with gr.Accordion("Import an adapter", open=False):
        gr.Markdown("A PEFT LoRA folder (`adapter_config.json` + `adapter_model.safetensors`) or a .zip of one. "
                    "Pickle `.bin` adapters are refused: loading them can run code.")
        import_name = gr.Textbox(label="Name in the library (optional)", elem_id="pg-adapter-import-name")
        with gr.Row():
            folder = gr.Textbox(label="Folder path on this machine", scale=3, elem_id="pg-adapter-import-folder")
            folder_btn = gr.Button("Import folder", scale=1, elem_id="pg-adapter-import-folder-btn")
        with gr.Row():
            upload = gr.File(label=".zip upload", file_types=[".zip"], type="filepath", scale=3,
                             elem_id="pg-adapter-import-zip")
            zip_btn = gr.Button("Import .zip", scale=1, elem_id="pg-adapter-import-zip-btn")

    with gr.Accordion("Mix adapters (weighted)", open=False):
        gr.Markdown("A new adapter from 2+ adapters with PEFT `add_weighted_adapter`. **linear**: cheap, same "
                    "rank, weights ≥ 0; **cat**: exact, ranks add up; **svd**: exact up to the largest rank.")
        mix_names = gr.Dropdown(names(), multiselect=True, max_choices=MAX_MIX, label="Adapters to mix",
                                elem_id="pg-mix-names")
        with gr.Row():
            sliders = [gr.Slider(-1.0, 2.0, value=1.0 if i == 0 else 0.5, step=0.05, label=f"weight {i + 1}",
                                 visible=False, elem_id=f"pg-mix-w{i + 1}") for i in range(MAX_MIX)]
        with gr.Row():
            method = gr.Radio(list(MIX_METHODS), value="linear", label="Method", elem_id="pg-mix-method")
            mix_name = gr.Textbox(label="New adapter name", elem_id="pg-mix-name")
            mix_btn = gr.Button("Mix & save", variant="primary", elem_id="pg-mix-btn")

    lib_outputs = [table, pick, mix_names, header]

    def on_refresh(selected):
        return refreshed(selected)

    def on_activate(name):
        if not name:
            return _warn(ValueError("Choose an adapter to activate.")), *refreshed(name)
        try:
            msg = adapters.activate(name)
        except ValueError as err:
            return _warn(err), *refreshed(name)
        return f"✅ {msg}", *refreshed(name)

    def on_deactivate(name):
        return f"✅ {adapters.deactivate()}", *refreshed(name)

    def on_rename(name, new):
        try:
            msg = adapters.rename(name or "", new or "")
        except ValueError as err:
            return _warn(err), *refreshed(name)
        return f"✅ {msg}", *refreshed(new.strip())

    def on_delete(name, sure):
        if not sure:
            return _warn(ValueError("Tick “Yes, delete…” to confirm; deleting cannot be undone.")), \
                *refreshed(name), False
        try:
            msg = adapters.delete(name or "")
        except ValueError as err:
            return _warn(err), *refreshed(name), False
        return f"✅ {msg}", *refreshed(None), False

    def on_export(name):
        try:
            path = adapters.export_zip(name or "", Path(tempfile.mkdtemp(prefix="pg-export-")))
        except ValueError as err:
            return _warn(err), None
        return f"✅ Exported **{name}** as {path.name}.", str(path)

    def on_merge(out_name, progress=gr.Progress()):
        progress(0.1, desc="Loading a separate copy of the base and merging…")
        try:
            path = adapters.merge_and_save(out_name or "")
        except ValueError as err:
            return _warn(err)
        return f"✅ Merged model saved as safetensors in `{path}` (load it as a plain model anywhere)."

    def on_import_folder(path, name):
        try:
            info = adapters.import_folder(path or "", name)
        except (ValueError, OSError) as err:
            return _warn(err), *refreshed(None)
        return f"✅ Imported **{info.name}** (base: {info.base_model}).", *refreshed(info.name)

    def on_import_zip(path, name):
        if not path:
            return _warn(ValueError("Upload a .zip first.")), *refreshed(None)
        try:
            info = adapters.import_zip(path, name)
        except (ValueError, OSError) as err:
            return _warn(err), *refreshed(None)
        return f"✅ Imported **{info.name}** from the zip (base: {info.base_model}).", *refreshed(info.name)

    def on_mix_names(chosen):
        chosen = list(chosen or [])
        return [gr.update(visible=i < len(chosen), label=f"weight: {chosen[i]}" if i < len(chosen) else "")
                for i in range(MAX_MIX)]

    def on_mix(chosen, how, new, *weights):
        chosen = list(chosen or [])
        try:
            info = adapters.mix(MixSpec(tuple(chosen), tuple(weights[:len(chosen)]), new or "", how))
        except ValueError as err:
            return _warn(err), *refreshed(None)
        return f"✅ Mixed **{info.name}** ({how}, rank {info.rank}); activate it to try it.", *refreshed(info.name)

    private = {"api_visibility": "private"}
    gr.on(None, lambda: refreshed(None), None, lib_outputs, **private)  # page load: current library
    refresh_btn.click(on_refresh, pick, lib_outputs, **private)
    # Another tab or session changed the model/adapter (the header changed): refresh the table's state column.
    header.change(lambda sel: refreshed(sel)[:3], pick, lib_outputs[:3], show_progress="hidden", **private)
    pick.change(detail, pick, [card, curve], **private)
    mix_names.change(on_mix_names, mix_names, sliders, **private)
    export_btn.click(on_export, pick, [status, export_file], **private)
    merge_btn.click(on_merge, merged_name, status, **private)
    events = [
        activate_btn.click(on_activate, pick, [status, *lib_outputs], **private),
        base_btn.click(on_deactivate, pick, [status, *lib_outputs], **private),
        rename_btn.click(on_rename, [pick, new_name], [status, *lib_outputs], **private),
        delete_btn.click(on_delete, [pick, confirm], [status, *lib_outputs, confirm], **private),
        folder_btn.click(on_import_folder, [folder, import_name], [status, *lib_outputs], **private),
        zip_btn.click(on_import_zip, [upload, import_name], [status, *lib_outputs], **private),
        mix_btn.click(on_mix, [mix_names, method, mix_name, *sliders], [status, *lib_outputs], **private),
    ]
    for event in events:  # the card shows loaded/active state, which these change
        event.then(detail, pick, [card, curve], **private)

    _register_api(services)


def _register_api(services: Services) -> None:
    """Named endpoints for scripts (gradio_client); errors come back as gr.Error messages."""
    adapters = services.adapters

    def adapters_list() -> list[dict]:
        """Every library adapter with its metadata and whether it is loaded / active."""
        return adapters.summaries()

    def adapter_activate(name: str) -> str:
        """Activate the named adapter, or go back to the base model with an empty name."""
        try:
            return adapters.set_active(name)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def adapter_delete(name: str) -> str:
        """Delete an adapter from disk (deactivating it first if it is active)."""
        try:
            return adapters.delete(name)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def adapter_mix(names: list[str], weights: list[float], new_name: str, method: str = "linear") -> dict:
        """Mix 2+ adapters with weights (linear / cat / svd) into a new saved adapter."""
        try:
            return adapters.mix(MixSpec(tuple(names), tuple(weights), new_name, method)).summary()
        except ValueError as err:
            raise gr.Error(str(err)) from err

    gr.api(adapters_list, api_name="adapters")
    gr.api(adapter_activate, api_name="adapter_activate")
    gr.api(adapter_delete, api_name="adapter_delete")
    gr.api(adapter_mix, api_name="adapter_mix")
