"""Train tab: pick data and settings, start a LoRA / QLoRA run, watch loss and probe answers live.

Layout and wiring only: what each event does is playground.train.panel.TrainPanel (Gradio-free), and the run is
owned by services.trainer (a worker process per run), so reloading the page or closing it changes nothing; the
live view is rebuilt from the run folder every 1.5 s.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.services import Services
from playground.train.form import ROLE_FIELDS, form_values, recipe_config, recipe_fields, source_name
from playground.train.panel import BUSY_LABEL, LATEST, START_LABEL, Starter, TrainPanel
from playground.ui.errors import USER_ERRORS, api_errors, unseen_progress, user_errors, warn
from playground.ui.paths import server_path
from playground.ui.train_method import build_method_live, live_skips, live_updates, wire_method
from playground.ui.train_settings import NO_PREVIEW, build_settings, recipe_markdown


PREVIEW_GONE = "_The data source changed: click **Preview data** to see its rows._"


def start_button(busy: bool) -> dict[str, Any]:
    """While a run trains, Start says so but stays clickable: pressing it then shows that run and whose it is."""
    return gr.update(value=BUSY_LABEL if busy else START_LABEL, variant="secondary" if busy else "primary")


def starter(request: gr.Request | None) -> Starter:
    """Who is pressing Start: the --auth login, else this page's session (see Starter)."""
    if request is None:  # called directly, outside an event
        return Starter()
    return Starter.of(getattr(request, "username", None), request.session_hash)


def build(services: Services, header: gr.Markdown, state: gr.State) -> None:
    panel = TrainPanel(services.trainer, services.store, services.data_dir,
                       check_path=lambda path, field: server_path(services, path, field))

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=420):
            ui = build_settings(panel.model_targets(), panel.device_type())
        with gr.Column(scale=7):
            busy = panel.busy()
            with gr.Row():
                start_btn = gr.Button(BUSY_LABEL if busy else START_LABEL, variant="secondary" if busy else "primary",
                                      elem_id="train-start")
                stop_btn = gr.Button("Stop (saves the adapter so far)", variant="stop", elem_id="train-stop")
                # Enabled by the live view only while the shown run is resumable (TrainPanel.live)
                resume_btn = gr.Button("Resume from checkpoint", interactive=False, elem_id="train-resume")
            notice = gr.Markdown(elem_id="train-notice")  # a refused Start: the run in the way, until it ends
            status = gr.Markdown(elem_id="train-status")
            progress = gr.HTML(elem_id="train-progress")
            chart = gr.Plot(label="Loss, learning rate, gradient norm", elem_id="train-chart")
            method_live = build_method_live()  # DPO / GRPO: reward chart and sampled answers
            with gr.Row():
                run_pick = gr.Dropdown([LATEST], value=LATEST, label="Show run", elem_id="train-run-pick", scale=2)
                overlay = gr.Dropdown([], value=[], multiselect=True, label="Overlay earlier runs' loss", scale=2,
                                      elem_id="train-overlay")
                log_scale = gr.Checkbox(value=False, label="Log scale", scale=1, elem_id="train-log-scale")
            probe_title = gr.Markdown(elem_id="train-probe-title")
            probes = gr.Dataframe(headers=["step", "answer"], value=[], interactive=False, wrap=True,
                                  max_height=320, column_widths=["10%", "90%"], elem_id="train-probes")
            with gr.Accordion("Export as a script (transformers + peft + trl)", open=False):
                export_btn = gr.Button("Export this run's settings", elem_id="train-export-btn")
                command = gr.Textbox(label="Run on several GPUs", interactive=False, elem_id="train-export-cmd")
                script = gr.Code(language="python", label="Standalone script", elem_id="train-export-code")
                launch_config = gr.Code(language="yaml", label="accelerate config (save it next to the script)",
                                        visible=False, elem_id="train-export-accelerate")
    fields = ui.fields
    inputs = set(fields.values())
    last_key = gr.State(None)
    # The adapter name follows the data source (on_source), not the recipe pick, so a typed name survives both.
    on_recipe_pick = [name for name in recipe_fields() if name != "adapter_name"]
    proposed = gr.State(fields["adapter_name"].value)  # the name the tab last proposed (not typed by the user)

    def values_of(data: dict) -> dict[str, Any]:
        return {name: data[comp] for name, comp in fields.items()}

    # ------------------------------------------------------------ data and settings
    def on_kind(kind: str):
        return (gr.update(visible=kind == "recipe"), gr.update(visible=kind == "recipe"),
                gr.update(visible=kind == "file"), gr.update(visible=kind == "hub"))

    def on_recipe(recipe_id: str):
        if not recipe_id:
            return [gr.skip()] * (len(on_recipe_pick) + 1)
        v = form_values(recipe_config(recipe_id, panel.device_type()))
        return [recipe_markdown(recipe_id)] + [v[name] for name in on_recipe_pick]

    def on_source(kind: str, recipe: str, path: str | None, hub_id: str, name: str, last: str):
        """A new data source: the preview of the old one goes (its rows, lengths and loss mask would pass for
        this source's), and the adapter name becomes this source's unless the user typed their own."""
        new, typed = source_name(kind, recipe, path, hub_id), (name or "").strip() not in ("", last)
        # Written only when it changes: an upload fires `change` twice, and the second write of the same name
        # could land after the user started typing their own.
        same = typed or new == (name or "").strip()
        return (PREVIEW_GONE, gr.update(value=NO_PREVIEW, headers=["rows"]), None, None, "",
                gr.skip() if same else new, last if typed else new)

    def preview(data: dict):
        try:
            p = panel.preview(values_of(data), data[ui.mask_row])
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return [warn(err)] + [gr.skip()] * (4 + len(ROLE_FIELDS))
        cols = [gr.update(choices=["", *p.columns]) for _ in ROLE_FIELDS]
        return [p.summary, gr.update(value=p.rows, headers=p.headers), p.lengths_figure, p.mask, p.mask_info, *cols]

    def params(data: dict) -> str:
        try:
            return panel.describe(values_of(data))
        except USER_ERRORS as err:
            return warn(err)

    # ------------------------------------------------------------ run control
    def start(data: dict, request: gr.Request):
        try:
            result = panel.start(values_of(data), starter(request))
        except USER_ERRORS as err:  # validation, data problems
            gr.Warning(str(err))
            return warn(err), gr.skip(), None, gr.skip(), gr.skip()
        if not result.started:  # another run trains: show it (the latest run is the active one), keep the form
            return gr.skip(), LATEST, None, start_button(True), f"⏳ {result.message}"
        return f"🚀 {result.message}", LATEST, None, start_button(True), ""

    def stop(run: str):
        msg = panel.stop(run)
        gr.Info(msg)
        return msg

    def resume(run: str):
        try:
            run_id = panel.resume(run)
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(err), gr.skip()
        return f"▶️ Resumed run `{run_id}`.", None

    def refresh(run: str, log: bool, overlays: list[str], key: Any):
        """Timer tick: redraw only what changed (the chart is the expensive part)."""
        view = panel.live(run, log, overlays, key)
        if not view.changed:
            return [view.status, view.progress] + [gr.skip()] * 9 + live_skips() + [gr.skip()]
        return [view.status, view.progress, view.figure, view.probes, view.probe_title, view.key,
                gr.update(choices=[LATEST, *view.runs]), gr.update(choices=view.runs),
                gr.update(interactive=view.stoppable), gr.update(interactive=view.resumable),
                start_button(view.busy), *live_updates(view),
                gr.skip() if view.busy else ""]  # the run a Start was refused for has ended: drop the notice

    def export(data: dict):
        with user_errors():
            out = panel.export(data[run_pick], values_of(data))
        return out.command, out.code, gr.update(value=out.accelerate_config, visible=bool(out.accelerate_config),
                                                label=f"{out.config_filename} (save it next to the script)")

    # ------------------------------------------------------------ wiring
    kind = fields["kind"]
    kind.change(on_kind, kind, [fields["recipe"], ui.recipe_info, fields["path"], ui.hub_row],
                api_visibility="private")
    fields["recipe"].change(on_recipe, fields["recipe"], [ui.recipe_info] + [fields[n] for n in on_recipe_pick],
                            api_visibility="private")
    source = [kind, fields["recipe"], fields["path"], fields["hub_id"]]
    gr.on([*(box.change for box in source), fields["hub_split"].change], on_source,
          [*source, fields["adapter_name"], proposed],
          [ui.data_summary, ui.preview_table, ui.length_plot, ui.mask_view, ui.mask_info, fields["adapter_name"],
           proposed], trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    preview_outputs = [ui.data_summary, ui.preview_table, ui.length_plot, ui.mask_view, ui.mask_info,
                       *[fields[f"col_{r}"] for r in ROLE_FIELDS]]
    ui.preview_btn.click(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    ui.mask_row.submit(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    for name in ("completion_only_loss", "use_chat_template"):  # the loss mask follows the masking switches
        fields[name].input(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    # The trainable-parameter line: on page load and on any box's change, through ONE listener ("always_last"):
    # a recipe pick sets many boxes at once, and separate listeners per box could finish out of order and leave
    # the count of a half-applied form on screen.
    # The preview's summary is an input too: GRPO's memory estimate counts a hub dataset's prompts once it is read.
    gr.on(None, params, inputs | {ui.data_summary}, ui.params_info, trigger_mode="always_last", show_progress="hidden",
          api_visibility="private")
    # A model switch (the app's change signal) changes which layers a LoRA can wrap.
    state.change(lambda: gr.update(choices=["all-linear", *panel.model_targets()]), None,
                 fields["target_modules"], api_visibility="private")

    start_btn.click(start, inputs, [status, run_pick, last_key, start_btn, notice], api_visibility="private")
    stop_btn.click(stop, run_pick, status, api_visibility="private")
    resume_btn.click(resume, run_pick, [status, last_key], api_visibility="private")
    export_btn.click(export, inputs | {run_pick}, [command, script, launch_config], api_visibility="private")
    timer = gr.Timer(1.5)
    live_outputs = [status, progress, chart, probes, probe_title, last_key, run_pick, overlay, stop_btn, resume_btn,
                    start_btn, *method_live.outputs, notice]
    timer.tick(refresh, [run_pick, log_scale, overlay, last_key], live_outputs, **unseen_progress(last_key),
               api_visibility="private")
    for comp in (run_pick, log_scale, overlay):
        comp.change(refresh, [run_pick, log_scale, overlay, last_key], live_outputs, show_progress="hidden",
                    api_visibility="private")

    # ------------------------------------------------------------ scripting API (gradio_client)
    @api_errors
    def train_start(request: gr.Request, recipe: str = "pig-latin", settings_json: str = "{}") -> str:
        """Start a run from a bundled recipe ('' = plain defaults; its defaults for the app's device, as the tab
        shows them) plus flat JSON overrides, e.g.
        {"max_steps": 20, "learning_rate": 0.001} or {"kind": "file", "path": "/data.jsonl"}. Returns the run id;
        while another run trains, nothing starts and it returns the sentence naming that run and its progress."""
        result = panel.start_request(recipe, settings_json, starter(request))
        return result.run_id if result.started else result.message

    @api_errors
    def train_status(run_id: str = "") -> dict:
        """State, step, total, losses, eval losses, probe answers and the adapter name (when done)."""
        return services.trainer.status(run_id or None).to_dict()

    @api_errors
    def train_stop(run_id: str = "") -> str:
        """Stop a run (default: the active one) at the end of its current step; it saves the adapter so far."""
        return services.trainer.stop(run_id or None)

    gr.api(train_start, api_name="train_start")
    gr.api(train_status, api_name="train_status")
    gr.api(train_stop, api_name="train_stop")

    @api_errors
    def train_resume(run_id: str = "") -> str:
        """Resume an interrupted or failed run from its last checkpoint, as the Resume button does ('' = the
        latest run). Returns the run id."""
        return panel.resume(run_id or None)

    gr.api(train_resume, api_name="train_resume")
    wire_method(fields, ui.method_rows or {}, ui.method_note, services.adapters.library.names)
