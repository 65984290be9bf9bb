"""The components a link sets (ui/links.py), as the Decode and Compare tabs hand them over, and the "Copy link"
row both tabs lay out. Layout only: no tab is imported here, so the tabs can import it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr


@dataclass
class DecodeParts:
    """What decode_tab.build returns. `knobs` in KNOB_NAMES order; `view_out` is the tab's own view outputs
    (state, chart, stats, table, candidates, text, waterfall); `beam_out`: summary, tree, finals, node paths,
    node pick; `explore_out`: sweep chart, small multiples; `views`: the sub-tabs."""

    prompt: gr.Textbox
    chat: gr.Checkbox
    knobs: list[Any]
    seed: gr.Number
    top_n: gr.Slider
    view_out: list[Any]
    notice: gr.Markdown
    template: gr.HTML
    views: gr.Tabs
    beams: gr.Slider
    beam_steps: gr.Slider
    length_penalty: gr.Slider
    beam_out: list[Any]
    explore_out: list[Any]
    copy: gr.Button
    link: gr.Textbox

    @property
    def state(self) -> Any:
        return self.view_out[0]


@dataclass
class CompareParts:
    """What compare_tab.build returns: the message box, the settings in the tab's order (system, temperature,
    top-k, top-p, min-p, repetition penalty, max new tokens, seed), the note that says them in words, and its
    "Copy link" row."""

    message: gr.Textbox
    settings: list[Any]
    note: gr.Markdown
    copy: gr.Button
    link: gr.Textbox


def link_row(prefix: str) -> tuple[gr.Button, gr.Textbox]:
    """A "Copy link" button and the read-only box the link appears in (#<prefix>-copy-link, #<prefix>-link)."""
    with gr.Row(equal_height=True):
        button = gr.Button("🔗 Copy link", size="sm", scale=0, min_width=120, elem_id=f"{prefix}-copy-link")
        box = gr.Textbox(show_label=False, interactive=False, scale=6, container=False, elem_id=f"{prefix}-link",
                         placeholder="Copy link: a URL that opens this exact state (settings, text, adapter)",
                         buttons=["copy"])
    return button, box
