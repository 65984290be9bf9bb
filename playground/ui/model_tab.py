"""Model tab: switch the base model, look inside it, and estimate fine-tuning memory.

Only layout and wiring; what is shown comes from playground.model.overview (the base model's own anatomy,
loaded adapters excluded and listed on their own line).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from playground.model.charts import memory_chart
from playground.model.memory import MemoryEstimateConfig
from playground.model.overview import (
    adapters_markdown,
    memory_config,
    memory_report,
    model_overview,
)
from playground.model.sources import BUNDLED, model_choices, outside_model_path, same_local_path
from playground.services import Services
from playground.ui.errors import USER_ERRORS, user_errors, warn
from playground.ui.paths import looks_like_a_path, server_path
from playground.ui.session_adapter import adapter_of
from playground.ui.inputs import Slider


def check_model_path(services: Services, source: str) -> None:
    """The path policy with the Model tab's own sentence (this tab has no upload to point to)."""
    try:
        server_path(services, source, "Model path")
    except ValueError as err:
        raise ValueError(outside_model_path(source, services.paths.roots)) from err


def build(services: Services, header: gr.Markdown, state: gr.State, session: gr.State) -> None:
    """`session`: this browser's adapter choice (ui.session_adapter): the adapters line marks it active."""
    cache: dict[int, tuple] = {}
    startup = services.store.settings.source  # the --model source: it may always be loaded again

    def overview(choice: Any) -> tuple:
        """The base model's overview, computed once per model revision, plus the loaded-adapters line."""
        rev = services.store.revision
        if rev not in cache:
            with services.store.use() as lm:
                o = model_overview(lm)
            cache.clear()
            cache[rev] = (o.summary, o.facts, o.modules, o.layers, o.architecture, o.template_html)
        mine = adapter_of(services, choice)
        loaded = [(name, count, name == mine) for name, count, _ in services.adapters.loaded_sizes()]
        return (*cache[rev], adapters_markdown(loaded))

    with gr.Row():
        choice = gr.Dropdown(model_choices(startup), value=startup, label="Base model", allow_custom_value=True,
                             scale=2, elem_id="model-choice")
        custom = gr.Textbox(label="…or a hub id / local folder / .gguf path", scale=3, elem_id="model-custom")
        load_btn = gr.Button("Load model", variant="primary", scale=1, elem_id="model-load")
    status = gr.Markdown(elem_id="model-status")
    summary = gr.Markdown(elem_id="model-summary")
    loaded_adapters = gr.Markdown(elem_id="model-adapters")
    with gr.Row():
        facts = gr.Dataframe(headers=["Fact", "Value"], label="Overview", interactive=False,
                             elem_id="model-facts")
        modules = gr.Dataframe(headers=["Module", "Parameters", "Share"], label="Parameters per module",
                               interactive=False)
    layers = gr.Dataframe(headers=["Kind", "Class", "Name", "Weight shape", "Count", "Parameters"],
                          label="Layer types", interactive=False, elem_id="model-layers")
    with gr.Accordion("Architecture (print(model))", open=False):
        arch = gr.Code(language=None, elem_id="model-arch")
    with gr.Accordion("Chat template for a sample conversation (special tokens highlighted)", open=True):
        template = gr.HTML(elem_id="model-template")

    gr.Markdown("### Fine-tuning memory estimator")
    d = MemoryEstimateConfig()
    with gr.Row():
        with gr.Column(scale=1):
            batch = Slider(1, 64, value=d.batch_size, step=1, label="Batch size")
            seq = Slider(64, 8192, value=d.seq_len, step=64, label="Sequence length")
            precision = gr.Radio(["fp32", "bf16", "fp16"], value=d.precision, label="Precision")
            method = gr.Radio([("Full fine-tune", "full"), ("LoRA", "lora"), ("QLoRA (4-bit base)", "qlora")],
                              value=d.method, label="Method")
            rank = Slider(1, 256, value=d.lora_rank, step=1, label="LoRA rank")
            optimizer = gr.Dropdown(["adamw_32bit", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "sgd"],
                                    value=d.optimizer, label="Optimizer")
            checkpointing = gr.Checkbox(value=d.gradient_checkpointing, label="Gradient checkpointing")
            attention = gr.Radio([("Eager", "eager"), ("SDPA", "sdpa"), ("Flash attention", "flash")],
                                 value=d.attention, label="Attention")
        with gr.Column(scale=2):
            mem_plot = gr.Plot(elem_id="memory-chart")
            mem_text = gr.Markdown(elem_id="memory-total")

    overview_outputs = [summary, facts, modules, layers, arch, template, loaded_adapters]
    mem_inputs = [batch, seq, precision, method, rank, optimizer, checkpointing, attention]

    def refresh_memory(*values):
        """The estimate for the base model the store holds now (loaded adapters are not layers to wrap)."""
        with user_errors():
            cfg = memory_config(*values)
        with services.store.use() as lm:
            est, text = memory_report(lm.model, cfg)
        return memory_chart(est), text

    def load(selected: str | None, typed: str, progress=gr.Progress()):
        source = (typed or "").strip() or (selected or "").strip()
        if not source:
            raise gr.Error("Choose a model from the list or type a hub id / local path.")
        progress(0.05, desc=f"Loading {source}…")
        settings = dataclasses.replace(services.store.settings, source=source)
        try:
            if source != BUNDLED and looks_like_a_path(source) and not same_local_path(source, startup):
                check_model_path(services, source)  # a folder/file on the server: policy applies
            loaded = services.store.load(settings, progress=lambda msg: progress(0.5, desc=msg))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(f"{err} The previous model ({services.store.current.name}) stays loaded."), gr.skip()
        return f"Loaded **{loaded.name}** in {loaded.load_seconds:.1f} s.", services.stamp()

    private = {"api_visibility": "private"}
    # triggers=None: on every page load (a reload shows the current model) and whenever an input changes (this
    # browser's adapter; for the estimator, its boxes).
    gr.on(None, overview, session, overview_outputs, show_progress="hidden", **private)
    gr.on(None, refresh_memory, mem_inputs, [mem_plot, mem_text], show_progress="hidden", **private)
    # The model or its adapters changed (this tab, another tab or browser): describe what is loaded now.
    state.change(overview, session, overview_outputs, show_progress="hidden", **private).then(
        refresh_memory, mem_inputs, [mem_plot, mem_text], show_progress="hidden", **private)
    # A successful load writes the new stamp, so the change event above redraws this tab (and the others).
    load_btn.click(load, [choice, custom], [status, state], api_name="load_model")
