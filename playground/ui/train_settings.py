"""Layout of the Train tab's settings column: data, LoRA, quantization and trainer settings.

Every settings box is drawn from the settings' schema (playground.train.form.form_fields: label, help line,
widget, choices, range, row and accordion), so a new setting appears here without touching this file.
`build_settings` returns the boxes keyed by their flat form name, plus the few display components the tab
wires; no logic lives here.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.data.recipes import list_recipes
from playground.train.config import ALL_LINEAR, CPU_OPTIMIZERS, GPU_OPTIMIZERS, TrainJobConfig, precision_choices
from playground.train.form import SECTION_TITLES, FormField, form_fields, form_values, recipe_config
from playground.train.launch import process_choices, strategy_choices
from playground.ui.train_method import METHOD_FIELDS, build_method_note, hidden_fields, hidden_rows
from playground.ui.inputs import Slider

FILE_TYPES = [".jsonl", ".json", ".csv"]
NO_PREVIEW = [["Click Preview data to see the first rows."]]  # the preview table before (or after a new source)


@dataclass
class SettingsUI:
    fields: dict[str, gr.components.Component]
    recipe_info: gr.Markdown
    preview_btn: gr.Button
    data_summary: gr.Markdown
    preview_table: gr.Dataframe
    length_plot: gr.Plot
    mask_row: gr.Number
    mask_view: gr.HighlightedText
    mask_info: gr.Markdown
    params_info: gr.Markdown
    hub_row: gr.Row
    method_rows: dict[str, gr.Row] | None = None  # DPO / GRPO rows, shown for their method (ui.train_method)
    method_note: gr.Markdown | None = None


def recipe_markdown(recipe_id: str) -> str:
    for r in list_recipes():
        if r.id == recipe_id:
            return f"**{r.title}** — {r.description}  \nProbe: _{r.probe}_"
    return ""


def elem_id(name: str) -> str:
    return "train-" + name.replace("_", "-")


def widget(f: FormField, value: Any, **extra: Any) -> gr.components.Component:
    """The component for one setting, from its schema entry; `extra` = presentation (choices known only now,
    visibility)."""
    m, s = f.meta, f.setting
    kind = m.get("widget") or {bool: "checkbox", int: "number", float: "number"}.get(s.kind, "text")
    common: dict[str, Any] = dict(label=m["label"], info=m["help"], elem_id=elem_id(f.name))
    choices = extra.pop("choices", m.get("choices"))
    common.update(extra)
    if kind == "number" and "blank" in m:  # gr.Number cannot stay empty (its page shows 0): a text box can
        return gr.Textbox(value="" if value is None else str(value), placeholder=m["blank"], min_width=110,
                          **common)
    if kind == "number":
        step = {"step": m["step"]} if "step" in m else {}
        return gr.Number(value=value, precision=0 if s.kind is int else None, min_width=110, **step, **common)
    if kind == "slider":
        step = m.get("step", 1)  # a slider spans ge .. the last step below lt
        return Slider(m.get("ge", 0), m["lt"] - step, value=value, step=step, **common)
    if kind == "checkbox":
        return gr.Checkbox(value=bool(value), **common)
    if kind == "dropdown":
        return gr.Dropdown(choices, value=value, allow_custom_value=bool(m.get("open")), min_width=120, **common)
    if kind == "radio":
        return gr.Radio(choices, value=value, **common)
    if kind == "checkboxgroup":
        return gr.CheckboxGroup(choices, value=value, **common)
    if kind == "file":
        common.pop("info")  # gr.File has no help line
        return gr.File(value=value or None, file_types=FILE_TYPES, type="filepath", **common)
    return gr.Textbox(value=value, **common)


def render(fields: list[FormField], values: dict[str, Any], extras: dict[str, dict[str, Any]],
           after: dict[str, Callable[[], Any]], hidden_rows: set[str]) -> tuple[dict[str, Any], dict[str, gr.Row]]:
    """Draw `fields` in order: consecutive fields of one `group` in a collapsed accordion, of one `row` on one
    line. Returns the components by name and the row containers by row name."""
    out: dict[str, Any] = {}
    rows: dict[str, gr.Row] = {}

    def draw(f: FormField) -> None:
        out[f.name] = widget(f, values.get(f.name), **dict(extras.get(f.name, {})))
        if f.name in after:
            after[f.name]()

    for group, in_group in itertools.groupby(fields, key=lambda f: f.meta.get("group")):
        with gr.Accordion(group, open=False) if group else contextlib.nullcontext():
            for row, in_row in itertools.groupby(in_group, key=lambda f: f.meta.get("row")):
                if row is None:
                    for f in in_row:
                        draw(f)
                    continue
                with gr.Row(visible=row not in hidden_rows) as rows[row]:
                    for f in in_row:
                        draw(f)
    return out, rows


def build_settings(target_choices: list[str], device_type: str) -> SettingsUI:
    recipes = list_recipes()
    first = recipes[0].id if recipes else ""
    v = form_values(recipe_config(first, device_type) if first else TrainJobConfig())
    v["recipe"] = first or None
    extras = {
        "recipe": {"choices": [(r.title, r.id) for r in recipes]},
        "path": {"visible": False},
        "target_modules": {"choices": [ALL_LINEAR, *target_choices]},
        "optimizer": {"choices": CPU_OPTIMIZERS + (GPU_OPTIMIZERS if device_type == "cuda" else [])},
        "precision": {"choices": precision_choices(device_type)},  # 16-bit only where it runs
        "processes": {"choices": process_choices(device_type)},  # what this machine has: its GPUs, or 2 on a CPU
        "strategy": {"choices": strategy_choices(device_type)},  # only what is importable and runs here
        "start_adapter": {"choices": [""]},  # the library's adapters, listed when the picker opens
        **{name: {"visible": name not in hidden_fields(v["method"])} for name in METHOD_FIELDS},
    }
    by_section = {s: [f for f in form_fields() if f.section == s] for s in SECTION_TITLES}
    info: dict[str, Any] = {}

    gr.Markdown(f"### {SECTION_TITLES['data']}")
    after = {"recipe": lambda: info.setdefault("recipe", gr.Markdown(recipe_markdown(first),
                                                                      elem_id="train-recipe-info")),
             "method": lambda: info.setdefault("method", build_method_note(v["method"]))}
    fields, rows = render(by_section["data"], v, extras, after, hidden_rows={"hub"})
    with gr.Row():
        preview_btn = gr.Button("Preview data", elem_id="train-preview-btn", scale=1)
        mask_row = gr.Number(value=1, precision=0, label="Example row for the loss mask", scale=1,
                             elem_id="train-mask-row")
    data_summary = gr.Markdown(elem_id="train-data-summary")
    preview_table = gr.Dataframe(value=NO_PREVIEW, headers=["rows"],
                                 label="First rows", interactive=False, wrap=True, max_height=260,
                                 elem_id="train-preview-table")
    length_plot = gr.Plot(label="Token lengths", elem_id="train-length-plot")
    mask_info = gr.Markdown(elem_id="train-mask-info")
    mask_view = gr.HighlightedText(label="Loss mask: green tokens are training targets, the rest is masked",
                                   color_map={"loss": "#86efac", "chosen": "#86efac", "rejected": "#fca5a5"},
                                   show_legend=False, show_inline_category=False,
                                   combine_adjacent=True, elem_id="train-mask")

    gr.Markdown(f"### {SECTION_TITLES['lora']}")
    fields.update(render(by_section["lora"], v, extras, {}, set())[0])
    # Filled by a page-load event: counting needs PEFT, whose import would slow the app's start by seconds.
    params_info = gr.Markdown("Trainable parameters: counting…", elem_id="train-params")

    gr.Markdown(f"### {SECTION_TITLES['train']}")
    train_fields, train_rows = render(by_section["train"], v, extras, {}, hidden_rows(v["method"]))
    fields.update(train_fields)
    return SettingsUI(fields=fields, recipe_info=info["recipe"], preview_btn=preview_btn, data_summary=data_summary,
                      preview_table=preview_table, length_plot=length_plot, mask_row=mask_row, mask_view=mask_view,
                      mask_info=mask_info, params_info=params_info, hub_row=rows["hub"],
                      method_rows=train_rows, method_note=info["method"])
