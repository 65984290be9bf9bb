"""What the Model tab shows, as plain data: the base model's facts and tables, the estimator's summary, and the
separate line about loaded adapters. Gradio-free; the tab only lays these out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.model.inspect import (
    ModelFacts,
    architecture_text,
    format_bytes,
    format_count,
    layer_type_table,
    model_facts,
    params_per_module,
    render_chat_template,
)
from playground.model.memory import MemoryBreakdown, MemoryEstimateConfig, estimate_memory, model_shape
from playground.model.store import LoadedModel


@dataclass(frozen=True)
class ModelOverview:
    """The read-only Model tab outputs for one loaded base model (adapters excluded)."""

    summary: str
    facts: list[list[str]]
    modules: list[list[str]]
    layers: list[list[Any]]
    architecture: str
    template_html: str


def model_overview(lm: LoadedModel) -> ModelOverview:
    """Facts, parameters per module, layer types, print(model) and the chat template of the base model.

    Loaded adapters are left out everywhere (see playground.model.anatomy); `adapters_markdown` describes them.
    Caller holds the model lock.
    """
    facts = model_facts(lm.model, lm.name)
    dtype = facts.dtype + ("" if lm.quantization == "none" else f" ({lm.quantization})")
    rows = [["Parameters", f"{format_count(facts.total_params)} ({facts.total_params:,})"],
            ["Architecture", f"{facts.architecture} ({facts.model_type})"],
            ["Vocab size", f"{facts.vocab_size:,}"], ["Context length", str(facts.context_length)],
            ["Hidden size", str(facts.hidden_size)], ["Layers", str(facts.num_layers)],
            ["Attention heads", str(facts.num_heads)], ["KV heads", str(facts.num_kv_heads)],
            ["Intermediate size", f"{facts.intermediate_size}{' (4 × hidden)' if facts.intermediate_derived else ''}"],
            ["Device", facts.device], ["Dtype", dtype],
            ["Memory footprint", _footprint(facts)],
            ["Load time", f"{lm.load_seconds:.1f} s" + (" (from cache)" if lm.from_cache else "")]]
    modules = [[name, f"{n:,}" if n else "0 (tied to the input embedding)",
                f"{100 * n / max(1, facts.total_params):.1f} %"] for name, n in params_per_module(lm.model)]
    _, template_html = render_chat_template(lm.tokenizer)
    return ModelOverview(summary=f"### {lm.name}: **{format_count(facts.total_params)}** parameters",
                         facts=rows, modules=modules, layers=layer_type_table(lm.model),
                         architecture=architecture_text(lm.model), template_html=template_html)


def _footprint(facts: ModelFacts) -> str:
    """The weights plus, on the bf16 CPU path, the pre-packed copies oneDNN multiplies with (cpu_speed.py)."""
    if not facts.packed_bytes:
        return format_bytes(facts.memory_bytes)
    return (f"{format_bytes(facts.memory_bytes + facts.packed_bytes)} ({format_bytes(facts.memory_bytes)} weights "
            f"+ {format_bytes(facts.packed_bytes)} pre-packed copies for oneDNN)")


def adapters_markdown(loaded: list[tuple[str, int, bool]]) -> str:
    """The separate line about adapters loaded into the live model: (name, parameters, active) each."""
    if not loaded:
        return "Loaded adapters: none. Every number on this tab is the base model's."
    parts = [f"**{name}**{' (active)' if active else ''}: {n:,} parameters" for name, n, active in loaded]
    return ("Loaded adapters, not counted in the base model's numbers on this tab: " + " · ".join(parts)
            + f" (together {format_count(sum(n for _, n, _ in loaded))}).")


def memory_config(batch: Any, seq: Any, precision: str, method: str, rank: Any, optimizer: str,
                  checkpointing: Any, attention: str) -> MemoryEstimateConfig:
    """The estimator's inputs, in the order of the tab's controls, as one config (ValueError names a field)."""
    values = {"batch_size": batch, "seq_len": seq, "lora_rank": rank}
    for field, value in values.items():
        try:
            values[field] = int(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{field} must be a whole number; got {value!r}.") from err
    return MemoryEstimateConfig(precision=precision, method=method, optimizer=optimizer,  # type: ignore[arg-type]
                                gradient_checkpointing=bool(checkpointing), attention=attention,  # type: ignore
                                **values)


def memory_report(model: Any, cfg: MemoryEstimateConfig) -> tuple[MemoryBreakdown, str]:
    """The estimate for the base model (adapters excluded) and its markdown summary."""
    est = estimate_memory(model_shape(model), cfg)
    lines = [f"**Total ≈ {format_bytes(est.total)}** · trainable parameters {est.trainable_params:,}"]
    lines += [f"- {label}: {format_bytes(value)}" for label, value in est.parts()]
    lines += [f"- _{note}_" for note in est.notes]
    return est, "\n".join(lines)
