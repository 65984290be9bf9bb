"""Model tab: switch the base model, look inside it, and estimate fine-tuning memory."""

from __future__ import annotations

import dataclasses

import gradio as gr

from playground.model.inspect import (
    architecture_text,
    format_bytes,
    format_count,
    layer_type_table,
    model_facts,
    params_per_module,
    render_chat_template,
)
from playground.model.memory import MemoryEstimateConfig, estimate_memory, memory_chart, model_shape
from playground.model.sources import KNOWN_MODELS, ModelLoadError
from playground.services import Services


def _overview(services: Services):
    """All read-only Model tab outputs for the loaded model."""
    with services.store.use() as lm:
        base = lm.base_model
        facts = model_facts(base, lm.name)
        rows = [["Parameters", f"{format_count(facts.total_params)} ({facts.total_params:,})"],
                ["Architecture", f"{facts.architecture} ({facts.model_type})"],
                ["Vocab size", f"{facts.vocab_size:,}"], ["Context length", str(facts.context_length)],
                ["Hidden size", str(facts.hidden_size)], ["Layers", str(facts.num_layers)],
                ["Attention heads", str(facts.num_heads)], ["KV heads", str(facts.num_kv_heads)],
                ["Intermediate size", str(facts.intermediate_size)], ["Device", facts.device],
                ["Dtype", facts.dtype + ("" if lm.quantization == "none" else f" ({lm.quantization})")],
                ["Memory footprint", format_bytes(facts.memory_bytes)],
                ["Load time", f"{lm.load_seconds:.1f} s" + (" (from cache)" if lm.from_cache else "")]]
        modules = [[name, f"{n:,}" if n else "0 (tied to the input embedding)",
                    f"{100 * n / max(1, facts.total_params):.1f} %"] for name, n in params_per_module(base)]
        layers = layer_type_table(base)
        arch = architecture_text(lm.model)
        _, template_html = render_chat_template(lm.tokenizer)
        summary = f"### {lm.name}: **{format_count(facts.total_params)}** parameters"
    return summary, rows, modules, layers, arch, template_html


def _memory_config(batch, seq, precision, method, rank, optimizer, checkpointing, attention) -> MemoryEstimateConfig:
    """The estimator's inputs, in the order of the tab's controls, as one config."""
    try:
        return MemoryEstimateConfig(batch_size=int(batch), seq_len=int(seq), precision=precision, method=method,
                                    lora_rank=int(rank), optimizer=optimizer,
                                    gradient_checkpointing=bool(checkpointing), attention=attention)
    except (ValueError, TypeError) as err:
        raise gr.Error(str(err)) from err


def _memory(services: Services, cfg: MemoryEstimateConfig):
    with services.store.use() as lm:
        shape = model_shape(lm.base_model)
    est = estimate_memory(shape, cfg)
    lines = [f"**Total ≈ {format_bytes(est.total)}** · trainable parameters {est.trainable_params:,}"]
    lines += [f"- {label}: {format_bytes(value)}" for label, value in est.parts()]
    lines += [f"- _{note}_" for note in est.notes]
    return memory_chart(est), "\n".join(lines)


def build(services: Services, header: gr.Markdown) -> None:
    cache: dict[int, tuple] = {}

    def overview() -> tuple:
        """Overview for the current model, computed once per model revision (components read it on load)."""
        rev = services.store.revision
        if rev not in cache:
            cache.clear()
            cache[rev] = _overview(services)
        return cache[rev]

    with gr.Row():
        choice = gr.Dropdown(KNOWN_MODELS, value=services.store.settings.source
                             if services.store.settings.source in KNOWN_MODELS else None,
                             label="Base model", allow_custom_value=True, scale=2, elem_id="model-choice")
        custom = gr.Textbox(label="…or a hub id / local folder / .gguf path", scale=3, elem_id="model-custom")
        load_btn = gr.Button("Load model", variant="primary", scale=1, elem_id="model-load")
    status = gr.Markdown(elem_id="model-status")
    summary = gr.Markdown(elem_id="model-summary")
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
            batch = gr.Slider(1, 64, value=d.batch_size, step=1, label="Batch size")
            seq = gr.Slider(64, 8192, value=d.seq_len, step=64, label="Sequence length")
            precision = gr.Radio(["fp32", "bf16", "fp16"], value=d.precision, label="Precision")
            method = gr.Radio([("Full fine-tune", "full"), ("LoRA", "lora"), ("QLoRA (4-bit base)", "qlora")],
                              value=d.method, label="Method")
            rank = gr.Slider(1, 256, value=d.lora_rank, step=1, label="LoRA rank")
            optimizer = gr.Dropdown(["adamw_32bit", "adamw_8bit", "paged_adamw_32bit", "paged_adamw_8bit", "sgd"],
                                    value=d.optimizer, label="Optimizer")
            checkpointing = gr.Checkbox(value=d.gradient_checkpointing, label="Gradient checkpointing")
            attention = gr.Radio([("Eager", "eager"), ("SDPA", "sdpa"), ("Flash attention", "flash")],
                                 value=d.attention, label="Attention")
        with gr.Column(scale=2):
            mem_plot = gr.Plot(elem_id="memory-chart")
            mem_text = gr.Markdown(elem_id="memory-total")

    overview_outputs = [summary, facts, modules, layers, arch, template]
    mem_inputs = [batch, seq, precision, method, rank, optimizer, checkpointing, attention]

    def refresh_memory(*values):
        return _memory(services, _memory_config(*values))

    def load(selected: str | None, typed: str, progress=gr.Progress()):
        source = (typed or "").strip() or (selected or "").strip()
        if not source:
            raise gr.Error("Choose a model from the list or type a hub id / local path.")
        progress(0.05, desc=f"Loading {source}…")
        settings = dataclasses.replace(services.store.settings, source=source)
        try:
            loaded = services.store.load(settings, progress=lambda msg: progress(0.5, desc=msg))
        except ModelLoadError as err:
            gr.Warning(str(err))
            return f"⚠️ {err} The previous model ({services.store.current.name}) stays loaded."
        return f"✅ Loaded **{loaded.name}** in {loaded.load_seconds:.1f} s."

    # triggers=None: on every page load (a reload shows the current model) and, for the estimator,
    # whenever one of its inputs changes.
    gr.on(None, overview, None, overview_outputs, api_visibility="private")
    gr.on(None, refresh_memory, mem_inputs, [mem_plot, mem_text], show_progress="hidden",
          api_visibility="private")
    load_btn.click(load, [choice, custom], status, api_name="load_model").then(
        overview, None, overview_outputs, api_visibility="private").then(
        refresh_memory, mem_inputs, [mem_plot, mem_text], api_visibility="private").then(
        services.store.header_markdown, None, header, api_visibility="private")
