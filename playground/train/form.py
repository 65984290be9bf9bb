"""The Train tab's flat form <-> TrainJobConfig, recipe defaults and API requests (Gradio-free).

Everything here is derived from the settings' schema (the dataclass fields' metadata, see
playground.train.schema): which boxes the form has and where, what they are called, how their values are
coerced, and which of them a recipe pick resets. The form adds two boxes that are views of a setting: the
"Train for" switch (epochs vs max steps) and one dropdown per column role (DataSource.columns).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from playground.adapters.library import default_name
from playground.data.sources import DataSource
from playground.train.config import SETTINGS, TrainJobConfig, apply_overrides
from playground.train.schema import Setting

ROLE_FIELDS = ["messages", "prompt", "completion", "instruction", "input", "output", "text", "chosen", "rejected"]
SECTION_TITLES = {"data": "1 · Data", "lora": "2 · LoRA", "train": "3 · Training"}
LENGTH_MODE = Setting("length_mode", "train", str, False, dict(
    label="Train for", help="A number of passes over the data, or a fixed number of optimizer steps.",
    widget="radio", choices=[("Epochs", "epochs"), ("Max steps", "steps")], row="length"))
MAX_STEPS_SHOWN = 100  # what the Max steps box shows while training for epochs
# Left empty, these are scaled to the run's length; a recipe's fixed values for them are not used.
RUN_SCALED = [name for name, s in SETTINGS.items() if s.meta.get("blank") == "auto"]


@dataclass(frozen=True)
class FormField:
    """One box of the form: its flat name, the form section it sits in, and the setting it shows."""

    name: str
    section: str  # "data" | "lora" | "train"
    setting: Setting

    @property
    def meta(self) -> dict[str, Any]:
        return self.setting.meta


def _column_setting(role: str, columns: Setting) -> Setting:
    meta = dict(label=f"{role} column", help=f"The column holding the {role} (empty = the standard name).",
                widget="dropdown", choices=[""], open=True, row="columns", group=columns.meta.get("group"))
    return Setting(f"col_{role}", columns.section, str, False, meta)


def form_fields() -> list[FormField]:
    """Every box of the form in display order, grouped by section (a field's `section` metadata, else the
    section of the config that owns it; the adapter's name goes with the training settings)."""
    out: list[FormField] = []
    for name, setting in SETTINGS.items():
        section = setting.meta.get("section") or setting.section or "train"
        if name == "columns":
            out += [FormField(f"col_{role}", section, _column_setting(role, setting)) for role in ROLE_FIELDS]
            continue
        if name == "epochs":
            out.append(FormField(LENGTH_MODE.name, section, LENGTH_MODE))
        out.append(FormField(name, section, setting))
    order = list(SECTION_TITLES)
    return sorted(out, key=lambda f: order.index(f.section))  # stable: keeps the field order within a section


def recipe_fields() -> list[str]:
    """The boxes a recipe pick resets to the recipe's values (all but the `sticky` ones)."""
    return [f.name for f in form_fields() if not f.meta.get("sticky")]


def config_from_form(values: dict[str, Any]) -> TrainJobConfig:
    """Flat form values (names as in form_fields) -> a TrainJobConfig; base/data_dir are filled by the manager.
    Empty or malformed boxes raise ValueError with a sentence naming the field."""
    v = dict(values)
    v["columns"] = {role: v[f"col_{role}"] for role in ROLE_FIELDS if v.get(f"col_{role}") not in (None, "")}
    for role in ROLE_FIELDS:
        v.pop(f"col_{role}", None)
    if v.pop(LENGTH_MODE.name, "epochs") != "steps":
        v["max_steps"] = None
    elif v.get("max_steps") in (None, ""):  # None would mean "by epochs": an emptied box must not start one
        label = SETTINGS["max_steps"].label
        raise ValueError(f"{label} is empty: type a number of steps, or train by epochs.")
    return apply_overrides(TrainJobConfig(), v)


def form_values(config: TrainJobConfig) -> dict[str, Any]:
    """Inverse of config_from_form (to show defaults and recipe settings in the form)."""
    sections = {"tuning": config.tuning, "data": config.data, "lora": config.lora, "train": config.train, "": config}
    v = {name: getattr(sections[s.section], name) for name, s in SETTINGS.items()}
    for name, s in SETTINGS.items():
        if s.meta.get("zero") and v[name] is None:
            v[name] = 0
    columns = v.pop("columns")
    v.update({f"col_{role}": columns.get(role, "") for role in ROLE_FIELDS})
    v[LENGTH_MODE.name] = "steps" if config.train.max_steps else "epochs"
    v["max_steps"] = config.train.max_steps or MAX_STEPS_SHOWN
    return v


def recipe_config(recipe_id: str, device_type: str = "cpu") -> TrainJobConfig:
    """Defaults for a bundled recipe on this device: its data, its training defaults (Recipe.defaults_for), its
    probe, named after it.

    A recipe's eval / probe intervals (RUN_SCALED) are not applied: left empty they scale with the run's length
    (about EVALS_PER_RUN evaluations and PROBES_PER_RUN probes), so a shorter run still shows a live probe."""
    from playground.data.recipes import get_recipe

    recipe = get_recipe(recipe_id)
    config = TrainJobConfig(data=DataSource(kind="recipe", recipe=recipe.id), adapter_name=recipe.id)
    defaults = {k: v for k, v in recipe.defaults_for(device_type).items() if k not in RUN_SCALED}
    config = apply_overrides(config, defaults)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, probe_prompt=recipe.probe))


def request_config(recipe: str, settings_json: str | dict[str, Any] | None,
                   device_type: str = "cpu") -> TrainJobConfig:
    """API request -> config: a recipe's defaults on this device (or the plain defaults when `recipe` is empty)
    with flat JSON overrides, e.g. {"max_steps": 20, "learning_rate": 1e-3} or {"kind": "file", "path": "/x.jsonl"}.
    {"epochs": 2} without max_steps trains for 2 epochs: the recipe's max steps are dropped, as they would
    otherwise rule (the form's "Train for" switch does the same). A caller may send the object itself, not as text."""
    overrides: Any = settings_json  # an object, or a number, a list … (json.loads raised a TypeError on those)
    if isinstance(settings_json, str) or settings_json is None:
        try:
            overrides = json.loads(settings_json or "{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"settings_json is not valid JSON: {err.msg}.") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"settings_json must be a JSON object of setting names to values (got {overrides!r}).")
    if "epochs" in overrides and "max_steps" not in overrides:
        overrides = {**overrides, "max_steps": None}
    base = recipe_config(recipe, device_type) if recipe else TrainJobConfig()
    return apply_overrides(base, overrides)


NEUTRAL_NAME = "my-adapter"  # a new source's adapter name before its file or dataset is known


def source_name(kind: str | None, recipe: str | None, path: str | None, hub_id: str | None) -> str:
    """The adapter name the Train tab proposes for a data source: the recipe's id, an uploaded file's stem, a
    hub dataset's last part (made a valid library name), else NEUTRAL_NAME: never the previous source's name."""
    if kind == "recipe":
        raw = recipe or ""
    elif kind == "file":
        raw = PurePath(str(path or "")).stem
    else:
        raw = str(hub_id or "").rstrip("/").rsplit("/", 1)[-1]
    return default_name(raw, NEUTRAL_NAME)
