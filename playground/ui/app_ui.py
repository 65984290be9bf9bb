"""The gr.Blocks app: a header that always shows the model and active adapter, then one tab per feature.

Each tab module lays out its components and wires events to Gradio-free logic; nothing else lives here.
"""

from __future__ import annotations

import gradio as gr

from playground.services import Services
from playground.ui import adapters_tab, compare_tab, decode_tab, model_tab, train_tab

# System fonts only: the app must render offline (no font CDN).
APP_THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "Consolas", "monospace"])
APP_CSS = """
#pg-header {border-bottom: 1px solid var(--border-color-primary); padding-bottom: 4px;}
.pg-special {background: #fde68a; color: #92400e; border-radius: 3px; padding: 0 2px;}
.pg-mono textarea {font-family: ui-monospace, monospace !important; font-size: 12px !important;}
"""


def build_app(services: Services) -> gr.Blocks:
    """Build the whole UI around the given services."""
    with gr.Blocks(title="LLM Playground", analytics_enabled=False) as demo:
        with gr.Row(elem_id="pg-header"):
            gr.Markdown("## LLM Playground")
            header = gr.Markdown(services.store.header_markdown(), elem_id="pg-model-badge")
        with gr.Tabs():
            with gr.Tab("Model", id="model"):
                model_tab.build(services, header)
            with gr.Tab("Decode", id="decode"):
                decode_tab.build(services, header)
            with gr.Tab("Train", id="train"):
                train_tab.build(services, header)
            with gr.Tab("Adapters", id="adapters"):
                adapters_tab.build(services, header)
            with gr.Tab("Compare", id="compare"):
                compare_tab.build(services, header)
        # The header follows model/adapter changes made in any tab or browser session.
        timer = gr.Timer(2.0)
        timer.tick(services.store.header_markdown, outputs=header, show_progress="hidden", queue=False,
                   api_visibility="private")
        demo.load(services.store.header_markdown, outputs=header, queue=False, api_visibility="private")
    return demo
