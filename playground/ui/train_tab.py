"""Train tab: pick data and settings, start a LoRA / QLoRA run, watch loss and probe answers live.

Layout only: the run is owned by services.trainer (a worker process per run), so reloading the page or
closing it changes nothing; the live view is rebuilt from the run folder every 1.5 s.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from playground.data.loading import load_raw
from playground.data.preview import build_preview
from playground.train.export import export_script
from playground.services import Services
from playground.train.charts import length_histogram, loss_figure
from playground.train.form import ROLE_FIELDS, config_from_form, form_values, recipe_config, request_config
from playground.train.views import probe_header, probe_rows, progress_html, status_markdown
from playground.train.manager import linear_module_names
from playground.ui.train_settings import build_settings, recipe_markdown

LATEST = "(latest run)"
RECIPE_FIELDS = ["r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora", "bias",
                 "quantization", "length_mode", "epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup",
                 "batch_size", "grad_accum", "max_seq_length", "packing", "gradient_checkpointing", "optimizer",
                 "eval_fraction", "eval_steps", "save_steps", "probe_every", "probe_prompt", "completion_only_loss",
                 "adapter_name"]


def build(services: Services, header: gr.Markdown) -> None:
    trainer, store = services.trainer, services.store
    raw_cache: dict[str, Any] = {}  # last loaded source -> raw rows (previewing another row is instant)

    def model_targets() -> list[str]:
        with store.use() as lm:
            return linear_module_names(lm.base_model)

    def device_type() -> str:
        with store.use() as lm:
            return lm.device.type

    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=420):
            ui = build_settings(model_targets(), device_type())
        with gr.Column(scale=7):
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop (saves the adapter so far)", variant="stop", elem_id="train-stop")
                resume_btn = gr.Button("Resume from checkpoint", elem_id="train-resume")
            status = gr.Markdown(elem_id="train-status")
            progress = gr.HTML(elem_id="train-progress")
            chart = gr.Plot(label="Loss, learning rate, gradient norm", elem_id="train-chart")
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
    fields = ui.fields
    inputs = set(fields.values())
    last_key = gr.State(None)

    def values_of(data: dict) -> dict[str, Any]:
        return {name: data[comp] for name, comp in fields.items()}

    def form_config(data: dict):
        cfg = config_from_form(values_of(data))
        return dataclasses.replace(cfg, base=trainer.base_ref(), data_dir=str(services.data_dir))

    # ------------------------------------------------------------ data
    def on_kind(kind: str):
        return (gr.update(visible=kind == "recipe"), gr.update(visible=kind == "recipe"),
                gr.update(visible=kind == "file"), gr.update(visible=kind == "hub"))

    def on_recipe(recipe_id: str):
        if not recipe_id:
            return [gr.skip()] * (len(RECIPE_FIELDS) + 1)
        v = form_values(recipe_config(recipe_id))
        return [recipe_markdown(recipe_id)] + [v[name] for name in RECIPE_FIELDS]

    def preview(data: dict):
        try:
            cfg = config_from_form(values_of(data))
            key = repr((cfg.data.kind, cfg.data.recipe, cfg.data.path, cfg.data.hub_id, cfg.data.hub_split))
            if key not in raw_cache:
                raw_cache.clear()
                raw_cache[key] = load_raw(cfg.data)
            with store.use() as lm:
                tok = lm.tokenizer
            p = build_preview(cfg.data, tok, cfg.train.max_seq_length, int(data[ui.mask_row] or 1),
                              cfg.train.seed, raw=raw_cache[key])
        except ValueError as err:
            gr.Warning(str(err))
            return [f"⚠️ {err}"] + [gr.skip()] * (4 + len(ROLE_FIELDS) + 1)
        choices = [""] + p.columns
        cols = [gr.update(choices=choices) for _ in ROLE_FIELDS]
        return [p.summary, gr.update(value=p.rows, headers=p.headers), length_histogram(p.lengths,
                cfg.train.max_seq_length), p.mask.highlighted(), f"Row {p.mask_row}: {p.mask.summary()}", *cols]

    # ------------------------------------------------------------ settings summary
    def params(data: dict) -> str:
        try:
            return trainer.describe_settings(form_config(data))
        except ValueError as err:
            return f"⚠️ {err}"

    # ------------------------------------------------------------ run control
    def start(data: dict):
        try:
            run_id = trainer.start(form_config(data))
        except ValueError as err:  # validation, data problems, a run in progress
            gr.Warning(str(err))
            return f"⚠️ {err}", gr.skip(), None
        return f"🚀 Started run `{run_id}`.", LATEST, None

    def selected(run: str | None) -> str | None:
        return None if not run or run == LATEST else run

    def stop(run: str):
        msg = trainer.stop(selected(run))
        gr.Info(msg)
        return msg

    def resume(run: str):
        st = trainer.status(selected(run))
        try:
            trainer.resume(st.run_id)
        except ValueError as err:
            gr.Warning(str(err))
            return f"⚠️ {err}", gr.skip()
        return f"▶️ Resumed run `{st.run_id}`.", None

    def refresh(run: str, log: bool, overlays: list[str], key: Any):
        """Timer tick: redraw only what changed (the chart is the expensive part)."""
        try:
            st = trainer.status(selected(run))
        except ValueError:
            st = trainer.status(None)
        runs = trainer.list_runs()
        new_key = (st.run_id, st.state, len(st.losses), len(st.evals), len(st.probes), log, tuple(overlays or ()),
                   tuple(runs))
        if new_key == key:
            return [status_markdown(st), progress_html(st)] + [gr.skip()] * 7
        lines = {r: trainer.loss_history(r) for r in (overlays or []) if r != st.run_id and r in runs}
        fig = loss_figure(st.losses, st.evals, log_scale=log, overlays=lines, total_steps=st.total_steps)
        return [status_markdown(st), progress_html(st), fig, probe_rows(st), probe_header(st), new_key,
                gr.update(choices=[LATEST, *runs]), gr.update(choices=runs),
                gr.update(interactive=st.active)]

    def export(data: dict):
        try:
            run_id = selected(data[run_pick]) or (trainer.status(None).run_id or None)
            cfg = trainer.config(run_id) if run_id else form_config(data)
            out = export_script(cfg, run_id or "")
        except ValueError as err:
            gr.Warning(str(err))
            return gr.skip(), gr.skip()
        return out.command, out.code

    # ------------------------------------------------------------ wiring
    kind = fields["kind"]
    kind.change(on_kind, kind, [fields["recipe"], ui.recipe_info, fields["path"], ui.hub_row],
                api_visibility="private")
    fields["recipe"].change(on_recipe, fields["recipe"], [ui.recipe_info] + [fields[n] for n in RECIPE_FIELDS],
                            api_visibility="private")
    preview_outputs = [ui.data_summary, ui.preview_table, ui.length_plot, ui.mask_view, ui.mask_info,
                       *[fields[f"col_{r}"] for r in ROLE_FIELDS]]
    ui.preview_btn.click(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    ui.mask_row.submit(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    for name in ("completion_only_loss", "use_chat_template"):  # the loss mask follows the masking switches
        fields[name].input(preview, inputs | {ui.mask_row}, preview_outputs, api_visibility="private")
    watched = ["r", "lora_alpha", "target_modules", "use_dora", "bias", "quantization", "batch_size",
               "max_seq_length", "gradient_checkpointing", "optimizer"]
    for name in watched:
        fields[name].change(params, inputs, ui.params_info, show_progress="hidden", api_visibility="private")
    gr.on(None, params, inputs, ui.params_info, show_progress="hidden", api_visibility="private")  # page load
    header.change(lambda: gr.update(choices=["all-linear", *model_targets()]), None, fields["target_modules"],
                  api_visibility="private")

    start_btn.click(start, inputs, [status, run_pick, last_key], api_visibility="private")
    stop_btn.click(stop, run_pick, status, api_visibility="private")
    resume_btn.click(resume, run_pick, [status, last_key], api_visibility="private")
    export_btn.click(export, inputs | {run_pick}, [command, script], api_visibility="private")
    timer = gr.Timer(1.5)
    live_outputs = [status, progress, chart, probes, probe_title, last_key, run_pick, overlay, stop_btn]
    timer.tick(refresh, [run_pick, log_scale, overlay, last_key], live_outputs, show_progress="hidden",
               api_visibility="private")
    for comp in (run_pick, log_scale, overlay):
        comp.change(refresh, [run_pick, log_scale, overlay, last_key], live_outputs, show_progress="hidden",
                    api_visibility="private")

    # ------------------------------------------------------------ scripting API (gradio_client)
    def train_start(recipe: str = "pig-latin", settings_json: str = "{}") -> str:
        """Start a run from a bundled recipe ('' = plain defaults) plus flat JSON overrides, e.g.
        {"max_steps": 20, "learning_rate": 0.001} or {"kind": "file", "path": "/data.jsonl"}. Returns the run id."""
        try:
            cfg = request_config(recipe, settings_json)
            return trainer.start(dataclasses.replace(cfg, base=trainer.base_ref()))
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def train_status(run_id: str = "") -> dict:
        """State, step, total, losses, eval losses, probe answers and the adapter name (when done)."""
        try:
            return trainer.status(run_id or None).to_dict()
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def train_stop(run_id: str = "") -> str:
        """Stop a run (default: the active one) at the end of its step; it saves the adapter so far."""
        try:
            return trainer.stop(run_id or None)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    gr.api(train_start, api_name="train_start")
    gr.api(train_status, api_name="train_status")
    gr.api(train_stop, api_name="train_stop")
