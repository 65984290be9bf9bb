"""Adapters tab: the library table, a detail card with the loss curve, activate / swap / deactivate,
rename, delete, import (folder or .zip), export (.zip), merge-and-save, and weighted mixes.

Only layout and wiring: every operation is one call into `services.adapters` (playground.adapters.live), and
what the tab shows comes from one snapshot (`adapters.state()`, rendered by playground.adapters.views).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from playground.adapters.charts import adapter_loss_figure
from playground.adapters.live import name_argument
from playground.adapters.mixing import MIX_METHODS, MIX_WEIGHT_MAX, MIX_WEIGHT_MIN, MIX_WEIGHT_STEP, MixSpec
from playground.adapters.views import LIBRARY_HEADERS, LibraryState, default_pick, session_moved
from playground.services import Services
from playground.ui.errors import USER_ERRORS, api_errors, unseen_progress, warn
from playground.ui.paths import server_path
from playground.ui.session_adapter import adapter_of, own_adapter
from playground.ui.session_adapter import pick as pick_adapter
from playground.ui.inputs import Slider

MAX_MIX = 4  # weight sliders shown for a mix
NO_SELECTION = "_No adapter selected. Train one in the Train tab or import one below._"
NOTHING_TO_MERGE = "Nothing to merge: no adapter is active in this browser. Activate one first."
KEEP = object()  # an operation that leaves the picker as it is


def refuse(sentence: str) -> Any:
    """Raise a user's mistake as a ValueError (shown as a sentence, like the ones the logic raises)."""
    raise ValueError(sentence)


COLUMN_WIDTHS = ["13%", "7%", "7%", "12%", "9%", "5%", "13%", "7%", "7%", "7%", "13%"]


def build(services: Services, demo: gr.Blocks, header: gr.Markdown, state: gr.State, session: gr.State) -> None:
    """`session`: this browser's adapter choice (ui.session_adapter): Activate sets it, not the server's."""
    adapters = services.adapters

    def seen(choice: Any) -> LibraryState:
        """The library as this browser sees it: "active" is its own adapter, not the server's default."""
        return adapters.state(adapter_of(services, choice), session=True)

    def card(name: str | None, choice: Any, snapshot: LibraryState | None = None) -> tuple[str, Any]:
        """The detail card and the loss chart (hidden when the adapter has no loss history)."""
        if not name:
            return NO_SELECTION, gr.update(value=None, visible=False)
        snapshot = snapshot or seen(choice)
        try:
            text, info = snapshot.detail(name), snapshot.info(name)
        except USER_ERRORS as err:
            return warn(err), gr.update(value=None, visible=False)
        fig = adapter_loss_figure(info)  # None without a loss history: the card says why, no empty chart
        return text, gr.update(value=fig, visible=fig is not None)

    def view(choice: Any, selected: str | None) -> tuple:
        """Table, picker, mix picker, card, chart and the remembered selection from one snapshot."""
        snapshot = seen(choice)
        pick = default_pick(snapshot.names, selected, snapshot.active)
        return (snapshot.rows(), gr.update(choices=snapshot.names, value=pick),
                gr.update(choices=snapshot.names), *card(pick, choice, snapshot), pick)

    def attempt(op: Callable[[], tuple[str, Any]], choice: Any) -> tuple:
        """Run one library operation returning (sentence, adapter to select or KEEP): (status, new stamp,
        picker, card, chart, remembered selection) on success, the refusal's sentence and no change otherwise.
        The new stamp fires `state.change`, which redraws this tab and every other one; the picker and card are
        drawn here too, so they show with the status sentence rather than one redraw later."""
        try:
            message, selected = op()
        except (*USER_ERRORS, OSError) as err:
            gr.Warning(str(err))
            return warn(err), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        if selected is KEEP:
            return message, services.stamp(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), None
        return (message, services.stamp(), gr.update(choices=adapters.library.names(), value=selected),
                *card(selected, choice), selected, None)

    gr.Markdown("Saved LoRA adapters for the loaded base model. **Activate** one to use it in every tab of "
                "this browser (the header shows which; other browsers, e.g. a projector, keep theirs); swapping between loaded adapters is instant, the base is never "
                "reloaded. New adapters (trained, mixed, imported) appear here by themselves.")
    status = gr.Markdown(elem_id="pg-adapters-status")
    # The adapter this browser ran when the status line was written ("" = the base); None after a library
    # operation here, whose own sentence says what changed. When this browser's adapter changes under it (deleted
    # elsewhere…), the line is rewritten (on_session): "X is active in this browser" must not stay.
    status_about = gr.State(None)
    table = gr.Dataframe(headers=LIBRARY_HEADERS, interactive=False, wrap=True, column_widths=COLUMN_WIDTHS,
                         label="Adapter library", elem_id="pg-adapters-table", elem_classes=["pg-table"])
    with gr.Row():
        pick = gr.Dropdown([], value=None, label="Adapter", scale=3, elem_id="pg-adapter-pick")
        chosen = gr.State(None)  # the picker's intended value, kept on the server (see state.change below)
        refresh_btn = gr.Button("↻ Refresh", scale=1, elem_id="pg-adapters-refresh")
        activate_btn = gr.Button("Activate", variant="primary", scale=1, elem_id="pg-adapter-activate")
        base_btn = gr.Button("Base only (deactivate)", scale=1, elem_id="pg-adapter-deactivate")
    with gr.Row():
        with gr.Column(scale=2):
            card_md = gr.Markdown(NO_SELECTION, elem_id="pg-adapter-detail")
        with gr.Column(scale=3):
            curve = gr.Plot(label="Loss curve", visible=False, elem_id="pg-adapter-curve")

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
        mix_names = gr.Dropdown([], multiselect=True, max_choices=MAX_MIX, label="Adapters to mix",
                                elem_id="pg-mix-names")
        with gr.Row():
            sliders = [Slider(MIX_WEIGHT_MIN, MIX_WEIGHT_MAX, value=1.0 if i == 0 else 0.5, step=MIX_WEIGHT_STEP,
                                 label=f"weight {i + 1}", visible=False, elem_id=f"pg-mix-w{i + 1}")
                       for i in range(MAX_MIX)]
        with gr.Row():
            method = gr.Radio(list(MIX_METHODS), value="linear", label="Method", elem_id="pg-mix-method")
            mix_name = gr.Textbox(label="New adapter name", elem_id="pg-mix-name")
            mix_btn = gr.Button("Mix & save", variant="primary", elem_id="pg-mix-btn")

    def on_activate(name: str | None, base_only: bool = False):
        """This browser's adapter (checked and loaded here; the server's default and other browsers keep
        theirs): (status, the session's new choice, what the status line is about)."""
        try:
            if not name and not base_only:
                refuse("Choose an adapter to activate.")
            choice, message = pick_adapter(services, None if base_only else name)
        except (*USER_ERRORS, OSError) as err:
            gr.Warning(str(err))
            return warn(err), gr.skip(), gr.skip()  # this browser's adapter is unchanged
        return message, choice, "" if base_only else name

    def on_session(choice: Any, about: str | None):
        """This browser's adapter changed: a status line naming another one is replaced by what happened."""
        now = adapter_of(services, choice)
        if about is None or (about or None) == now:
            return gr.skip(), gr.skip()
        old = about or None
        gone = old is not None and old not in adapters.library.names()
        renamed = adapters.renamed_to(old) if gone and old else None
        unfit = adapters.unfit(old) if old and not gone else None
        return session_moved(old, now, renamed, gone and renamed is None, unfit), now or ""

    def on_rename(choice, name, new):
        return attempt(lambda: (adapters.rename(name or "", new or ""), (new or "").strip()), choice)

    def on_delete(choice, name, sure):
        if not sure:
            return *attempt(lambda: refuse("Tick “Yes, delete…” to confirm; deleting cannot be undone."), choice), False
        return *attempt(lambda: (adapters.delete(name or ""), None), choice), False

    def on_export(name):
        try:
            path = adapters.export_zip(name or "", Path(tempfile.mkdtemp(prefix="pg-export-")))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(err), None
        return f"Exported **{name}** as {path.name}.", str(path)

    def on_merge(choice, out_name, progress=gr.Progress()):
        progress(0.1, desc="Loading a separate copy of the base and merging…")

        def op() -> tuple[str, Any]:
            name = own_adapter(services, choice, None, NOTHING_TO_MERGE)  # this browser's, never the server's
            folder = adapters.merge_and_save(out_name or "", name)
            return f"Merged model saved as safetensors in `{folder}` (load it as a plain model anywhere).", KEEP
        return attempt(op, choice)[0]

    def on_import_folder(choice, path, name):
        def op() -> tuple[str, str]:
            info = adapters.import_folder(str(server_path(services, path, "Folder path")), name)
            return f"Imported **{info.name}** (base: {info.base_model}).", info.name
        return attempt(op, choice)

    def on_import_zip(choice, path, name):
        def op() -> tuple[str, str]:
            if not path:
                refuse("Upload a .zip first.")
            info = adapters.import_zip(str(server_path(services, path, ".zip upload")), name)
            return f"Imported **{info.name}** from the zip (base: {info.base_model}).", info.name
        return attempt(op, choice)

    def on_mix_names(chosen):
        chosen = list(chosen or [])
        return [gr.update(visible=i < len(chosen), label=f"weight: {chosen[i]}" if i < len(chosen) else "")
                for i in range(MAX_MIX)]

    def on_mix(choice, chosen, how, new, *weights):
        def op() -> tuple[str, str]:
            chosen_ = list(chosen or [])
            info = adapters.mix(MixSpec(tuple(chosen_), tuple(weights[:len(chosen_)]), new or "", how))
            return f"Mixed **{info.name}** ({how}, rank {info.rank}); activate it to try it.", info.name
        return attempt(op, choice)

    private = {"api_visibility": "private"}
    # Library operations and redraws take turns (one queue slot): a redraw that a timer tick fires while a mix
    # is saving waits for the mix, then reads the selection it made from `chosen`. (The picker's own value is
    # the one it had when the change was seen.)
    library = {**private, "concurrency_id": "adapters-library", "concurrency_limit": 1}
    view_outputs = [table, pick, mix_names, card_md, curve, chosen]
    changed = [status, state, pick, card_md, curve, chosen, status_about]
    # Page load, this browser's adapter changed, or anything else changed (this tab, another tab or browser, a
    # training run saving an adapter): redraw, keeping the selection. One listener, so two redraws never race.
    gr.on([demo.load, session.change, state.change], view, [session, chosen], view_outputs, show_progress="hidden",
          **library)
    refresh_btn.click(view, [session, pick], view_outputs, **library)
    pick.input(lambda choice, name: (*card(name, choice), name), [session, pick], [card_md, curve, chosen], **private)
    mix_names.change(on_mix_names, mix_names, sliders, **private)
    export_btn.click(on_export, pick, [status, export_file], **private)
    merge_btn.click(on_merge, [session, merged_name], status, **private)
    activate_btn.click(on_activate, pick, [status, session, status_about], **private)
    base_btn.click(lambda: on_activate(None, base_only=True), None, [status, session, status_about], **private)
    session.change(on_session, [session, status_about], [status, status_about], **unseen_progress(status_about),
                   **private)
    rename_btn.click(on_rename, [session, pick, new_name], changed, **library)
    delete_btn.click(on_delete, [session, pick, confirm], [*changed, confirm], **library)
    folder_btn.click(on_import_folder, [session, folder, import_name], changed, **library)
    zip_btn.click(on_import_zip, [session, upload, import_name], changed, **library)
    mix_btn.click(on_mix, [session, mix_names, method, mix_name, *sliders], changed, **library)
    _register_api(services)


def _register_api(services: Services) -> None:
    """Named endpoints for scripts (gradio_client); a user's mistake comes back as the same sentence."""
    adapters = services.adapters

    @api_errors
    def adapters_list() -> list[dict]:
        """Every library adapter with its metadata and whether it is loaded / active."""
        return adapters.state().summaries()

    @api_errors
    def adapter_activate(name: str) -> str:
        """Activate the named adapter as the server's default (what API calls and browsers that picked none
        run), or go back to the base model with an empty name."""
        return adapters.set_active(name)

    @api_errors
    def adapter_delete(name: str) -> str:
        """Delete an adapter from disk (deactivating it first if it is active)."""
        return adapters.delete(name_argument(name) or "")

    @api_errors
    def adapter_mix(names: list[str], weights: list[float], new_name: str, method: str = "linear") -> dict:
        """Mix 2+ adapters with weights (linear / cat / svd) into a new saved adapter."""
        return adapters.mix(MixSpec.request(names, weights, new_name, method)).summary()

    gr.api(adapters_list, api_name="adapters")
    gr.api(adapter_activate, api_name="adapter_activate")
    gr.api(adapter_delete, api_name="adapter_delete")
    gr.api(adapter_mix, api_name="adapter_mix")
