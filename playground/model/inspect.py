"""'Look inside the model': facts, parameter counts, layer types and the rendered chat template.

Every description is of the base model's own anatomy: loaded PEFT adapters (their `lora_A` / `lora_B`
layers and parameters) are left out through `playground.model.anatomy.base_view`.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from jinja2 import TemplateError

from playground.model.anatomy import base_view
from playground.model.cpu_fused import packed_bytes

SAMPLE_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Italy?"},
]


@dataclass(frozen=True)
class ModelFacts:
    name: str
    architecture: str
    model_type: str
    total_params: int
    trainable_params: int
    vocab_size: int
    context_length: int | None
    hidden_size: int | None
    num_layers: int | None
    num_heads: int | None
    num_kv_heads: int | None
    intermediate_size: int | None
    device: str
    dtype: str
    memory_bytes: int
    packed_bytes: int = 0  # oneDNN pre-packed weight copies on the bf16 CPU path (not in memory_bytes)
    intermediate_derived: bool = False  # config leaves it out (GPT-2's n_inner None): 4 × hidden, the default


def _cfg(cfg: Any, *names: str) -> int | None:
    """First present config attribute: families name the same thing differently (n_embd, d_model…)."""
    for n in names:
        v = getattr(cfg, n, None)
        if isinstance(v, int):
            return v
    return None


# How model families name the number of positions they attend to.
POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length")


def context_length(model_or_config: Any) -> int | None:
    """How many tokens a model (plain or PEFT-wrapped) or its config can attend to; None when the config does not
    say. The one reading of the Model tab's facts, the Decode / Compare prompt cuts and the evaluations' cuts."""
    cfg = getattr(model_or_config, "config", model_or_config)
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    values = (getattr(cfg, key, None) for key in POSITION_KEYS)  # the first positive whole number (not a bool)
    return next((v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0), None)


def format_count(n: int) -> str:
    """134515008 -> '134.5M' (the way model cards write sizes)."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def format_bytes(n: float) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return f"{int(n)} B"


def count_params(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable); tied weights counted once; 4-bit packed weights counted as their real size."""
    total = trainable = 0
    for p in model.parameters():  # parameters() already yields a tied tensor once
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":  # packed two 4-bit values per uint8
            n = int(getattr(p, "quant_state").shape.numel()) if getattr(p, "quant_state", None) else n * 2
        total += n
        trainable += n if p.requires_grad else 0
    return total, trainable


def model_facts(model: Any, name: str) -> ModelFacts:
    """Facts of the base model (adapters excluded; a PeftModel is looked through)."""
    model = base_view(model)
    cfg = model.config
    total, trainable = count_params(model)
    first = next(model.parameters())
    dtype = getattr(model, "dtype", first.dtype)
    hidden = _cfg(cfg, "hidden_size", "n_embd", "d_model")
    intermediate = _cfg(cfg, "intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
    return ModelFacts(
        name=name,
        architecture=type(model).__name__,
        model_type=getattr(cfg, "model_type", "?"),
        total_params=total,
        trainable_params=trainable,
        vocab_size=_cfg(cfg, "vocab_size") or model.get_input_embeddings().weight.shape[0],
        context_length=context_length(cfg),
        hidden_size=hidden,
        num_layers=_cfg(cfg, "num_hidden_layers", "n_layer", "num_layers"),
        num_heads=_cfg(cfg, "num_attention_heads", "n_head"),
        num_kv_heads=_kv_heads(cfg),
        intermediate_size=intermediate or (4 * hidden if hidden else None),
        device=first.device.type,
        dtype=str(dtype).removeprefix("torch."),
        memory_bytes=int(model.get_memory_footprint()),
        intermediate_derived=intermediate is None and hidden is not None,
        packed_bytes=packed_bytes(model),
    )


def _kv_heads(cfg: Any) -> int | None:
    """Falcon's original multi-query layout (not new_decoder_architecture) has one KV head whatever its
    num_kv_heads says; the modelling code ignores that field there."""
    if getattr(cfg, "multi_query", False) and not getattr(cfg, "new_decoder_architecture", False):
        return 1
    return _cfg(cfg, "num_key_value_heads", "num_kv_heads", "multi_query_group_num") or _cfg(
        cfg, "num_attention_heads", "n_head")


def params_per_module(model: torch.nn.Module, depth: int = 2) -> list[tuple[str, int]]:
    """Parameter count per module `depth` levels down (e.g. model.embed_tokens, model.layers, lm_head).

    A tied weight is counted under the first module that owns it, so the rows add up to the total.
    """
    model = base_view(model)
    seen: set[int] = set()
    counts: OrderedDict[str, int] = OrderedDict()
    for pname, p in model.named_parameters(remove_duplicate=False):
        key = ".".join(pname.split(".")[:depth])
        if pname.count(".") < depth:  # a parameter directly on a shallow module
            key = pname.rsplit(".", 1)[0] if "." in pname else pname
        counts.setdefault(key, 0)
        if id(p) in seen:
            continue
        seen.add(id(p))
        counts[key] += p.numel()
    return list(counts.items())


def _kind(module: torch.nn.Module) -> str | None:
    cls = type(module).__name__
    if isinstance(module, torch.nn.Embedding):
        return "Embedding"
    if isinstance(module, torch.nn.Linear) or cls in ("Linear4bit", "Linear8bitLt", "Conv1D"):
        return "Linear"
    if "Norm" in cls:
        return "Norm"
    return None


def layer_type_table(model: torch.nn.Module) -> list[list[Any]]:
    """Rows [kind, class, name (layer index as *), weight shape, count, params] grouped by pattern."""
    model = base_view(model)
    groups: OrderedDict[tuple, list] = OrderedDict()
    seen: set[int] = set()  # a tied weight (lm_head = embed_tokens) counts once, as in "Parameters per module"
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is None:
            continue
        weight = getattr(module, "weight", None)
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else ()
        if weight is not None and getattr(weight, "quant_state", None) is not None:
            shape = tuple(weight.quant_state.shape)
        pattern = re.sub(r"\.\d+\.", ".*.", name)
        own = list(module.parameters(recurse=False))
        if own and all(id(p) in seen for p in own):
            pattern += " (tied: shares a weight counted above)"
        params = sum(p.numel() for p in own if id(p) not in seen)
        seen.update(id(p) for p in own)
        key = (kind, type(module).__name__, pattern, shape)
        row = groups.setdefault(key, [kind, type(module).__name__, pattern, " × ".join(map(str, shape)), 0, 0])
        row[4] += 1
        row[5] += params
    return list(groups.values())


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """Distinct leaf names of Linear layers inside the blocks (LoRA target candidates), lm_head excluded."""
    model = base_view(model)
    names: list[str] = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if _kind(module) == "Linear" and leaf not in ("lm_head", "embed_out") and leaf not in names:
            names.append(leaf)
    return names


def architecture_text(model: torch.nn.Module) -> str:
    """Exactly what `print(model)` shows for the base model (as before any adapter was loaded)."""
    return repr(base_view(model))


NO_SYSTEM_NOTE = "This chat template refuses a system turn (as Gemma's and Mistral's do), so the sample has none."


def apply_sample_template(tokenizer: Any, conversation: list[dict]) -> tuple[str, str]:
    """(rendered sample, note). Templates that raise on a system turn get the conversation without it, and the
    note says so; a template that fails anyway gives "" and a note naming the error (never an exception)."""
    try:
        return tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True), ""
    except TemplateError:
        pass
    without = [m for m in conversation if m.get("role") != "system"]
    try:
        if len(without) < len(conversation):
            text = tokenizer.apply_chat_template(without, tokenize=False, add_generation_prompt=True)
            return text, NO_SYSTEM_NOTE
        raise TemplateError("the template raised on the sample conversation")
    except TemplateError as err:
        return "", f"The chat template could not render a sample conversation: {err}"


def render_chat_template(tokenizer: Any, conversation: list[dict] | None = None) -> tuple[str, str]:
    """(rendered text, HTML with special tokens highlighted) for a sample conversation."""
    conversation = conversation or SAMPLE_CONVERSATION
    if not getattr(tokenizer, "chat_template", None):
        msg = "This model has no chat template: it is a plain text model (use the prompt as is)."
        return msg, f"<p><em>{html.escape(msg)}</em></p>"
    text, note = apply_sample_template(tokenizer, conversation)
    note_html = f"<p><em>{html.escape(note)}</em></p>" if note else ""
    if not text:
        return note, note_html
    specials = sorted({t for t in tokenizer.all_special_tokens if t} | set(
        getattr(tokenizer, "added_tokens_encoder", {}).keys()), key=len, reverse=True)
    pieces = re.split("(" + "|".join(map(re.escape, specials)) + ")", text) if specials else [text]
    out = []
    for piece in pieces:
        esc = html.escape(piece).replace("\n", "↵\n")
        out.append(f'<span class="pg-special">{esc}</span>' if piece in specials else esc)
    body = "".join(out)
    return text, f'{note_html}<pre class="pg-template" style="white-space:pre-wrap">{body}</pre>'
