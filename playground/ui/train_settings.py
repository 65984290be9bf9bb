"""Layout of the Train tab's settings column: data, LoRA, quantization and trainer settings.

`build_settings` returns every settings component keyed by its flat form name (see playground.train.form),
plus the few display components the tab wires; no logic lives here.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from playground.data.recipes import list_recipes
from playground.train.config import ALL_LINEAR, BIASES, CPU_OPTIMIZERS, GPU_OPTIMIZERS, SCHEDULERS, TrainJobConfig
from playground.train.form import ROLE_FIELDS, form_values, recipe_config

FORMATS = [("Auto-detect", "auto"), ("Chat messages", "messages"), ("Prompt / completion", "prompt_completion"),
           ("Instruction / input / output", "instruction"), ("Plain text", "text")]


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


def recipe_markdown(recipe_id: str) -> str:
    for r in list_recipes():
        if r.id == recipe_id:
            return f"**{r.title}** — {r.description}  \nProbe: _{r.probe}_"
    return ""


def build_settings(target_choices: list[str], device_type: str) -> SettingsUI:
    recipes = list_recipes()
    first = recipes[0].id if recipes else ""
    v = form_values(recipe_config(first) if first else TrainJobConfig())
    f: dict[str, gr.components.Component] = {}

    gr.Markdown("### 1 · Data")
    f["kind"] = gr.Radio([("Bundled recipe", "recipe"), ("Upload a file", "file"), ("Hub dataset", "hub")],
                         value="recipe", label="Source", elem_id="train-source")
    f["recipe"] = gr.Dropdown([(r.title, r.id) for r in recipes], value=first or None, label="Recipe",
                              elem_id="train-recipe")
    recipe_info = gr.Markdown(recipe_markdown(first), elem_id="train-recipe-info")
    f["path"] = gr.File(label="JSONL / JSON / CSV (≤ 200 MB)", file_types=[".jsonl", ".json", ".csv"],
                        type="filepath", visible=False, elem_id="train-upload")
    with gr.Row(visible=False) as hub_row:
        f["hub_id"] = gr.Textbox(label="Hub dataset id", placeholder="user/dataset", scale=3, elem_id="train-hub-id")
        f["hub_split"] = gr.Textbox(value="train", label="Split", scale=1)
    with gr.Accordion("Format, columns and loss masking", open=False):
        f["format"] = gr.Dropdown(FORMATS, value="auto", label="Format", elem_id="train-format")
        with gr.Row():
            for role in ROLE_FIELDS:
                f[f"col_{role}"] = gr.Dropdown([""], value="", label=f"{role} column", allow_custom_value=True,
                                               min_width=120, elem_id=f"train-col-{role}")
        with gr.Row():
            f["completion_only_loss"] = gr.Checkbox(value=v["completion_only_loss"],
                                                    label="Loss on the answer only (completion-only)",
                                                    elem_id="train-completion-only")
            f["use_chat_template"] = gr.Checkbox(value=v["use_chat_template"],
                                                 label="Wrap prompt/completion rows in the chat template")
        with gr.Row():
            f["eval_fraction"] = gr.Slider(0, 0.5, value=v["eval_fraction"], step=0.01, label="Eval fraction")
            f["max_rows"] = gr.Number(value=v["max_rows"], precision=0, label="Use only the first N rows (0 = all)")
    with gr.Row():
        preview_btn = gr.Button("Preview data", elem_id="train-preview-btn", scale=1)
        mask_row = gr.Number(value=1, precision=0, label="Example row for the loss mask", scale=1,
                             elem_id="train-mask-row")
    data_summary = gr.Markdown(elem_id="train-data-summary")
    preview_table = gr.Dataframe(value=[["Click Preview data to see the first rows."]], headers=["rows"],
                                 label="First rows", interactive=False, wrap=True, max_height=260,
                                 elem_id="train-preview-table")
    length_plot = gr.Plot(label="Token lengths", elem_id="train-length-plot")
    mask_info = gr.Markdown(elem_id="train-mask-info")
    mask_view = gr.HighlightedText(label="Loss mask: green tokens are training targets, the rest is masked",
                                   color_map={"loss": "#86efac"}, show_legend=False, show_inline_category=False,
                                   combine_adjacent=True,
                                   elem_id="train-mask")

    gr.Markdown("### 2 · LoRA")
    with gr.Row():
        f["r"] = gr.Number(value=v["r"], precision=0, label="Rank r", elem_id="train-r", min_width=90)
        f["lora_alpha"] = gr.Number(value=v["lora_alpha"], label="Alpha", elem_id="train-alpha", min_width=90)
        f["lora_dropout"] = gr.Number(value=v["lora_dropout"], label="Dropout", min_width=90)
        f["bias"] = gr.Dropdown(BIASES, value=v["bias"], label="Bias", min_width=90)
    f["target_modules"] = gr.CheckboxGroup([ALL_LINEAR, *target_choices], value=v["target_modules"],
                                           label="Target modules", elem_id="train-targets")
    with gr.Row():
        f["use_rslora"] = gr.Checkbox(value=v["use_rslora"], label="rsLoRA (scale alpha/√r)")
        f["use_dora"] = gr.Checkbox(value=v["use_dora"], label="DoRA")
    f["quantization"] = gr.Radio([("None", "none"), ("8-bit", "8bit"), ("4-bit NF4 + double quant (QLoRA)", "4bit")],
                                 value=v["quantization"], label="Base model quantization (training copy)",
                                 elem_id="train-quant")
    # Filled by a page-load event: counting needs PEFT, whose import would slow the app's start by seconds.
    params_info = gr.Markdown("Trainable parameters: counting…", elem_id="train-params")

    gr.Markdown("### 3 · Training")
    with gr.Row():
        f["length_mode"] = gr.Radio([("Epochs", "epochs"), ("Max steps", "steps")], value=v["length_mode"],
                                    label="Train for", elem_id="train-length-mode")
        f["epochs"] = gr.Number(value=v["epochs"], label="Epochs", elem_id="train-epochs", min_width=90)
        f["max_steps"] = gr.Number(value=v["max_steps"], precision=0, label="Max steps", elem_id="train-max-steps",
                                   min_width=90)
    with gr.Row():
        f["learning_rate"] = gr.Number(value=v["learning_rate"], label="Learning rate", elem_id="train-lr",
                                       min_width=100)
        f["lr_scheduler"] = gr.Dropdown(SCHEDULERS, value=v["lr_scheduler"], label="Scheduler", min_width=120)
        f["warmup"] = gr.Number(value=v["warmup"], label="Warmup (<1: fraction, ≥1: steps)", min_width=100)
    with gr.Row():
        f["batch_size"] = gr.Number(value=v["batch_size"], precision=0, label="Batch size", elem_id="train-batch",
                                    min_width=90)
        f["grad_accum"] = gr.Number(value=v["grad_accum"], precision=0, label="Grad accumulation", min_width=90)
        f["max_seq_length"] = gr.Number(value=v["max_seq_length"], precision=0, label="Max sequence length",
                                        elem_id="train-max-len", min_width=90)
        f["seed"] = gr.Number(value=v["seed"], precision=0, label="Seed", min_width=80)
    with gr.Row():
        optimizers = CPU_OPTIMIZERS + (GPU_OPTIMIZERS if device_type == "cuda" else [])
        f["optimizer"] = gr.Dropdown(optimizers, value=v["optimizer"], label="Optimizer", min_width=140)
        f["packing"] = gr.Checkbox(value=v["packing"], label="Packing")
        f["gradient_checkpointing"] = gr.Checkbox(value=v["gradient_checkpointing"], label="Gradient checkpointing")
    with gr.Row():
        f["eval_steps"] = gr.Number(value=v["eval_steps"], precision=0, label="Eval every N steps", min_width=90)
        f["save_steps"] = gr.Number(value=v["save_steps"], precision=0, label="Checkpoint every N steps",
                                    min_width=90)
        f["probe_every"] = gr.Number(value=v["probe_every"], precision=0, label="Probe every N steps (0 = off)",
                                     elem_id="train-probe-every", min_width=90)
        f["probe_max_new_tokens"] = gr.Number(value=v["probe_max_new_tokens"], precision=0,
                                              label="Probe answer tokens", min_width=90)
    f["probe_prompt"] = gr.Textbox(value=v["probe_prompt"], label="Probe prompt (empty = the recipe's / first eval row)",
                                   elem_id="train-probe-prompt")
    with gr.Row():
        f["adapter_name"] = gr.Textbox(value=v["adapter_name"], label="Adapter name (letters, digits, - _ .)",
                                       elem_id="train-adapter-name", scale=3)
        f["overwrite"] = gr.Checkbox(value=False, label="Overwrite an adapter of that name", scale=1)
    return SettingsUI(fields=f, recipe_info=recipe_info, preview_btn=preview_btn, data_summary=data_summary,
                      preview_table=preview_table, length_plot=length_plot, mask_row=mask_row, mask_view=mask_view,
                      mask_info=mask_info, params_info=params_info, hub_row=hub_row)
