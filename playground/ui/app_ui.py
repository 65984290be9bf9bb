"""The gr.Blocks app: a header that always shows the model and active adapter, then one tab per feature.

Each tab module lays out its components and wires events to Gradio-free logic; nothing else lives here.

Tabs learn about changes made elsewhere (another tab, another browser, a training worker saving an adapter)
through one explicit signal: `state`, a per-page gr.State holding `services.stamp()`. A gr.Timer polls the
stamp; when it differs, the State's `.change` event fires and every tab refreshes what depends on the model,
the active adapter or the adapter library. A tab that changes any of these writes the new stamp into the
State itself, so the others follow at once instead of at the next poll.
"""

from __future__ import annotations

import gradio as gr

from playground.services import Services
from playground.ui import (
    adapters_tab,
    compare_tab,
    decode_tab,
    inside_tab,
    lessons_tab,
    links,
    model_tab,
    room_tab,
    session_adapter,
    train_tab,
)
from playground.ui.presenter import toggle as presenter_toggle

POLL_SECONDS = 2.0
# System fonts only: the app must render offline (no font CDN). Emoji and CJK glyphs fall back to Debian's
# fonts-noto-color-emoji and fonts-wqy-microhei (make setup-dev); no meaning is carried by an emoji alone.
APP_THEME = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "Consolas", "monospace"])
APP_CSS = """
#pg-header {border-bottom: 1px solid var(--border-color-primary); padding-bottom: 4px;}
.pg-special {background: #fde68a; color: #92400e; border-radius: 3px; padding: 0 2px;}
.pg-mono textarea {font-family: ui-monospace, monospace !important; font-size: 12px !important;}
.pg-table th, .pg-table th * {word-break: keep-all !important; overflow-wrap: normal !important;
  hyphens: none !important;}
.pg-table td, .pg-table td * {word-break: normal !important; overflow-wrap: anywhere;}
"""


def build_app(services: Services, presenter: bool = False) -> gr.Blocks:
    """Build the whole UI around the given services; `presenter`: start in presenter mode (the page also
    needs launch(head=presenter_head(...)): app.py's launch_app)."""
    with gr.Blocks(title="LLM Playground", analytics_enabled=False) as demo:
        state = gr.State(services.stamp())  # the change signal (see the module docstring)
        # This browser's own adapter (ui/session_adapter.py); tabs redraw on its `change`, which Gradio fires
        # only when the value really changed.
        session = session_adapter.new_state()
        with gr.Row(elem_id="pg-header"):
            gr.Markdown("## LLM Playground")
            header = gr.Markdown(services.store.header_markdown(), elem_id="pg-model-badge")
            presenter_toggle(demo, presenter)  # large type for a projector (ui/presenter.py)
        link_notes = gr.Markdown(elem_id="pg-link-notes")  # what an opened link could not restore (ui/links.py)
        lesson_bar = lessons_tab.build(services)  # guided demos over the tabs (ui/lessons_tab.py)
        with gr.Tabs(elem_id="pg-tabs") as tabs:
            with gr.Tab("Model", id="model"):
                model_tab.build(services, header, state, session)
            with gr.Tab("Decode", id="decode"):
                decode_parts = decode_tab.build(services, session, header, state, demo)
            with gr.Tab("Inside the model", id="inside"):
                inside_tab.build(services, session, state)
            with gr.Tab("Train", id="train"):
                train_tab.build(services, header, state)
            with gr.Tab("Adapters", id="adapters"):
                adapters_tab.build(services, demo, header, state, session)
            with gr.Tab("Guess the next token", id="room"): room_tab.build(services, session)
            with gr.Tab("Compare", id="compare"):
                compare_parts = compare_tab.build(services, header, state, session)
        # Every state is a link: opening one restores it; Decode and Compare copy theirs (ui/links.py).
        links.wire(services, demo, links.LinkTargets(tabs, link_notes, session, decode_parts, compare_parts))
        lessons_tab.wire(services, demo, lesson_bar, links.LinkTargets(tabs, link_notes, session, decode_parts,
                                                                       compare_parts))
        timer = gr.Timer(POLL_SECONDS)
        # Queued (not queue=False): only a queued event reports a changed State, which fires `state.change`.
        timer.tick(services.stamp, outputs=state, show_progress="hidden", api_visibility="private")
        # The header names this browser's adapter; a deleted one sends this browser back to the base, told so.
        state.change(lambda c: session_adapter.still_there(services, c), session, [session, header],
                     show_progress="hidden", api_visibility="private")
        session.change(lambda c: session_adapter.header_text(services, c), session, header, show_progress="hidden",
                       queue=False, api_visibility="private")
        demo.load(lambda c: session_adapter.header_text(services, c), session, header, queue=False,
                  api_visibility="private")
    return demo
