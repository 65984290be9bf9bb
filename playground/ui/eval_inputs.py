"""The input block both held-out evaluations on the Compare tab lay out (ui.compare_tab: loss / perplexity,
ui.compare_preference: DPO preference accuracy): a dataset picker or an upload, an adapter, a row limit, the run
button and a status line. One layout, so the two accordions stay alike; elem_ids are `pg-<prefix>-<part>`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.ui.session_adapter import THIS_BROWSERS, empty_choice
from playground.ui.inputs import Slider


@dataclass
class EvalInputs:
    dataset: gr.Dropdown
    upload: gr.File
    adapter: gr.Dropdown
    rows: gr.Slider
    run: gr.Button
    status: gr.Markdown


def eval_inputs(prefix: str, choices: list[Any], value: Any, *, dataset_label: str, upload_label: str,
                rows_label: str, rows: int, run_label: str, more: Callable[[], Any] | None = None) -> EvalInputs:
    """Lay the block out inside the caller's accordion (Gradio places components in the open context).
    `more` lays out the caller's own inputs next to the row limit, before the run button."""
    with gr.Row():
        dataset = gr.Dropdown(choices, value=value, label=dataset_label, elem_id=f"pg-{prefix}-recipe")
        upload = gr.File(label=upload_label, type="filepath", file_types=[".jsonl", ".json", ".csv"],
                         elem_id=f"pg-{prefix}-file")
    with gr.Row():
        adapter = gr.Dropdown(empty_choice(THIS_BROWSERS), value="", label="Adapter", elem_id=f"pg-{prefix}-adapter")
        limit = Slider(1, 500, value=rows, step=1, label=rows_label, elem_id=f"pg-{prefix}-rows")
        if more:
            more()
        run = gr.Button(run_label, variant="primary", elem_id=f"pg-{prefix}-run")
    status = gr.Markdown(elem_id=f"pg-{prefix}-status")
    return EvalInputs(dataset, upload, adapter, limit, run, status)
