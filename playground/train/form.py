"""The Train tab's flat form values <-> TrainJobConfig, and request building for the API (Gradio-free).

The tab keeps one dict of components keyed by these flat names; the handler passes their values here whole.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from playground.data.sources import DataSource
from playground.train.config import LoraSettings, TrainJobConfig, TrainSettings, apply_overrides

ROLE_FIELDS = ["messages", "prompt", "completion", "instruction", "input", "output", "text"]
LABELS = {  # for messages about empty number boxes
    "r": "LoRA rank r", "lora_alpha": "LoRA alpha", "lora_dropout": "LoRA dropout", "epochs": "Epochs",
    "max_steps": "Max steps", "learning_rate": "Learning rate", "warmup": "Warmup", "batch_size": "Batch size",
    "grad_accum": "Gradient accumulation", "max_seq_length": "Max sequence length", "seed": "Seed",
    "eval_fraction": "Eval fraction", "eval_steps": "Eval every N steps", "save_steps": "Checkpoint every N steps",
    "probe_every": "Probe every N steps", "probe_max_new_tokens": "Probe answer length", "max_rows": "Max rows",
}


INT_FIELDS = {"r", "max_steps", "batch_size", "grad_accum", "max_seq_length", "seed", "eval_steps", "save_steps",
              "probe_every", "probe_max_new_tokens", "max_rows"}
FLOAT_FIELDS = {"lora_alpha", "lora_dropout", "epochs", "learning_rate", "warmup", "eval_fraction"}
BOOL_FIELDS = {"use_rslora", "use_dora", "packing", "gradient_checkpointing", "completion_only_loss",
               "use_chat_template", "overwrite"}
OPTIONAL_FIELDS = {"max_steps", "max_rows"}


def _coerce(name: str, value: Any) -> Any:
    """Form value -> the field's type; empty or non-numeric boxes get a sentence, not a TypeError."""
    if name in BOOL_FIELDS:
        return bool(value)
    if name not in INT_FIELDS | FLOAT_FIELDS:
        return value
    label = LABELS.get(name, name)
    if value is None or value == "":
        if name in OPTIONAL_FIELDS:
            return None
        raise ValueError(f"{label} is empty.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number (got {value!r}).") from None
    if not math.isfinite(number):
        raise ValueError(f"{label} must be a finite number (got {value}).")
    if name in INT_FIELDS:
        if number != int(number):
            raise ValueError(f"{label} must be a whole number (got {value}).")
        return int(number)
    return number


def _section(kind: type, values: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{n: _coerce(n, v) for n, v in values.items() if n in names})


def config_from_form(values: dict[str, Any]) -> TrainJobConfig:
    """Flat form values (names as in form_values) -> a TrainJobConfig; base/data_dir are filled by the manager."""
    v = dict(values)
    v["columns"] = {role: v.pop(f"col_{role}") for role in ROLE_FIELDS
                    if v.get(f"col_{role}") not in (None, "")}
    for role in ROLE_FIELDS:
        v.pop(f"col_{role}", None)
    if v.pop("length_mode", "epochs") != "steps":
        v["max_steps"] = None
    if not v.get("max_rows"):
        v["max_rows"] = None
    if isinstance(v.get("target_modules"), str):
        v["target_modules"] = [v["target_modules"]]
    return TrainJobConfig(data=_section(DataSource, v), lora=_section(LoraSettings, v),
                          train=_section(TrainSettings, v), adapter_name=str(v.get("adapter_name") or "").strip(),
                          overwrite=bool(v.get("overwrite")))


def form_values(config: TrainJobConfig) -> dict[str, Any]:
    """Inverse of config_from_form (to show recipe defaults in the form)."""
    v: dict[str, Any] = {**dataclasses.asdict(config.data), **dataclasses.asdict(config.lora),
                         **dataclasses.asdict(config.train)}
    columns = v.pop("columns")
    v.update({f"col_{role}": columns.get(role, "") for role in ROLE_FIELDS})
    v["length_mode"] = "steps" if config.train.max_steps else "epochs"
    v["max_steps"] = config.train.max_steps or 100
    v["max_rows"] = config.data.max_rows or 0
    v["adapter_name"], v["overwrite"] = config.adapter_name, config.overwrite
    return v


def recipe_config(recipe_id: str) -> TrainJobConfig:
    """Defaults for a bundled recipe: its data, its training defaults, its probe, named after it."""
    from playground.data.recipes import get_recipe

    recipe = get_recipe(recipe_id)
    config = TrainJobConfig(data=DataSource(kind="recipe", recipe=recipe.id), adapter_name=recipe.id)
    config = apply_overrides(config, recipe.defaults)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, probe_prompt=recipe.probe))


def request_config(recipe: str, settings_json: str) -> TrainJobConfig:
    """API request -> config: a recipe's defaults (or the plain defaults when `recipe` is empty) with flat
    JSON overrides, e.g. {"max_steps": 20, "learning_rate": 1e-3} or {"kind": "file", "path": "/x.jsonl"}."""
    try:
        overrides = json.loads(settings_json or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"settings_json is not valid JSON: {err.msg}.") from None
    if not isinstance(overrides, dict):
        raise ValueError("settings_json must be a JSON object of setting names to values.")
    base = recipe_config(recipe) if recipe else TrainJobConfig()
    return apply_overrides(base, overrides)
