"""Train tab, the method part (SFT | DPO | GRPO): which settings rows each method shows, the starting-adapter
picker, and the live reward chart + sampled answers of DPO / GRPO runs.

Layout and wiring only. The settings themselves are schema fields (playground.train.methods) drawn by
ui.train_settings like every other box; the chart and tables come from playground.train.method_views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from playground.train.config import IGNORED_BY_METHOD
from playground.train.methods import METHOD_ROWS, REFERENCE_NOTE
from playground.ui.session_adapter import NEW_ADAPTER, adapter_list

ALL_METHOD_ROWS = sorted({row for rows in METHOD_ROWS.values() for row in rows})
METHOD_FIELDS = sorted({name for names in IGNORED_BY_METHOD.values() for name in names})  # boxes some method ignores
NOTES = {
    "sft": "",
    "dpo": ("**DPO** trains on pairs: the data needs `prompt` / `chosen` / `rejected` columns (plain text or chat "
            "messages; map them under *Format, columns and loss masking* when the names differ). "
            + REFERENCE_NOTE + " Max length = max prompt + max answer length (TRL 1.16's DPOConfig.max_length)."),
    "grpo": ("**GRPO** samples *generations per prompt* answers to each prompt of the data, scores them with the "
             "rewards below (weights add up; 0 = off) and reinforces the better ones. The batch size counts "
             "answers. " + REFERENCE_NOTE + " The answers in the data are not used for training."),
}


def hidden_rows(method: str) -> set[str]:
    """The method rows hidden for `method` (SFT hides them all)."""
    return set(ALL_METHOD_ROWS) - set(METHOD_ROWS.get(method, []))


def hidden_fields(method: str) -> set[str]:
    """The boxes `method` ignores, hidden one by one: each shares its row with boxes that still apply."""
    return set(IGNORED_BY_METHOD.get(method, ()))


@dataclass
class MethodLive:
    note: gr.Markdown
    chart: gr.Plot
    samples: gr.Dataframe

    @property
    def outputs(self) -> list[Any]:
        return [self.note, self.chart, self.samples]


def build_method_note(method: str) -> gr.Markdown:
    return gr.Markdown(NOTES.get(method, ""), elem_id="train-method-note")


def build_method_live() -> MethodLive:
    """Under the loss chart: a line on the method, the reward chart, GRPO's sampled answers (hidden for SFT)."""
    note = gr.Markdown(elem_id="train-method-info")
    chart = gr.Plot(label="Rewards (DPO: chosen vs rejected · GRPO: reward per rule)", visible=False,
                    elem_id="train-reward-chart")
    samples = gr.Dataframe(headers=["step", "prompt", "sampled answer", "reward"], value=[], interactive=False,
                           wrap=True, max_height=320, visible=False, column_widths=["8%", "30%", "47%", "15%"],
                           label="Sampled answers and their rewards", elem_id="train-samples")
    return MethodLive(note, chart, samples)


def live_updates(view: Any) -> list[Any]:
    """The method components' values for a changed LiveView (playground.train.panel)."""
    figure = getattr(view, "reward_figure", None)
    samples = getattr(view, "samples", [])
    return [getattr(view, "method_note", ""), gr.update(value=figure, visible=figure is not None),
            gr.update(value=samples, visible=bool(samples))]


def live_skips() -> list[Any]:
    return [gr.skip()] * 3


def wire_method(fields: dict[str, Any], rows: dict[str, gr.Row], note: gr.Markdown, adapter_names) -> None:
    """Method pick -> its rows (and the note) shown, the others hidden; the starting-adapter picker lists the
    library each time it is opened."""
    method = fields["method"]
    row_list = [rows[r] for r in ALL_METHOD_ROWS if r in rows]

    def on_method(value: str):
        hide, ignored = hidden_rows(value), hidden_fields(value)
        return ([gr.update(visible=r not in hide) for r in ALL_METHOD_ROWS if r in rows]
                + [gr.update(visible=name not in ignored) for name in METHOD_FIELDS] + [NOTES.get(value, "")])

    method.change(on_method, method, row_list + [fields[name] for name in METHOD_FIELDS] + [note],
                  api_visibility="private")

    fields["start_adapter"].focus(lambda current: adapter_list(adapter_names(), current, NEW_ADAPTER),
                                  fields["start_adapter"],
                                  fields["start_adapter"], api_visibility="private")
