"""Inside the model tab: logit lens, attention weights and the tokenizer view, plus the /logit_lens,
/attention and /tokenize API endpoints.

Layout and event wiring only; everything computed lives in playground/inside/.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.inside.charts import (
    attention_figure,
    heads_grid_figure,
    last_token_figure,
    lens_grid_figure,
    lens_top_figure,
)
from playground.inside.lens import TOP_K
from playground.inside.service import InsideService
from playground.inside.views import (
    SPECIAL_HEADERS,
    TOKEN_HEADERS,
    attention_summary,
    lens_summary,
    special_rows,
    template_html,
    token_chips_html,
    token_rows,
)
from playground.services import Services
from playground.ui.errors import USER_ERRORS, api_errors, unseen_progress, warn
from playground.ui.session_adapter import model_key, view_for
from playground.ui.inputs import Slider

EXAMPLES = ["The capital of France is", "The Eiffel Tower is in the city of", "1, 2, 3, 4, 5,",
            "The opposite of hot is"]
TOKEN_SAMPLE = "Tokenizers split text into pieces: “unbelievable”, 1234567, naïve café, 日本語, 🍕!"
PRIVATE = dict(api_visibility="private")
NONE3 = (None, None, None)


def build(services: Services, session: gr.State, stamp: gr.State | None = None) -> None:
    """Lay out the Inside tab inside the current gr.Tab. `session`: this browser's adapter choice
    (ui.session_adapter): the lens and attention run it; `stamp`: the app's change signal (app_ui), so a model
    switch or a change of the server's adapter this browser follows redraws the views too."""
    svc: InsideService = services.inside
    layers, heads = svc.shape()

    gr.Markdown("Look inside the loaded model (with its active adapter): what each layer would predict "
                "(**logit lens**), where each token looks (**attention**), and how text becomes **tokens**.")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=2, scale=4, value=EXAMPLES[0], elem_id="inside-prompt")
        chat = gr.Checkbox(label="chat (wrap in the model's chat template)", value=False, scale=1,
                           elem_id="inside-chat")
    with gr.Row():
        example_buttons = [gr.Button(text, size="sm", elem_id=f"inside-example-{i}") for i, text in enumerate(EXAMPLES)]
    # session_adapter.model_key each view on screen was computed for ("" = none): a model change redraws it
    lens_for, attn_for = gr.State(""), gr.State("")

    with gr.Tabs():
        with gr.Tab("Logit lens", id="inside-lens"):
            gr.Markdown("Every layer's residual stream at the last token, read out through the model's own final "
                        "norm and LM head: at which layer does the answer appear?")
            run_lens = gr.Button("Run the logit lens", variant="primary", elem_id="inside-lens-run")
            lens_md = gr.Markdown(elem_id="inside-lens-summary")
            with gr.Row():
                lens_top = gr.Plot(label="Top tokens per layer", elem_id="inside-lens-top")
                lens_grid = gr.Plot(label="Top-1 token per layer and position", elem_id="inside-lens-grid")
            lens_table = gr.Dataframe(headers=["layer", *[f"#{i + 1}" for i in range(TOP_K)]], interactive=False,
                                      label="Top tokens per layer (last layer first)", elem_id="inside-lens-table",
                                      max_height=360)
        with gr.Tab("Attention", id="inside-attention"):
            with gr.Row():
                run_attn = gr.Button("Show attention", variant="primary", elem_id="inside-attn-run", scale=1)
                layer = Slider(1, layers, value=1, step=1, label="layer", elem_id="inside-layer", scale=2)
                head = Slider(0, heads, value=0, step=1, label="head (0 = average over heads)",
                                 elem_id="inside-head", scale=2)
            attn_md = gr.Markdown(elem_id="inside-attn-summary")
            with gr.Row():
                attn_map = gr.Plot(label="Attention weights", elem_id="inside-attn-map")
                last_bars = gr.Plot(label="What the last token attends to", elem_id="inside-attn-last")
            heads_grid = gr.Plot(label="Every head of the layer", elem_id="inside-attn-heads")
        with gr.Tab("Tokens", id="inside-tokens"):
            with gr.Row():
                tok_text = gr.Textbox(label="Any text", lines=3, scale=4, value=TOKEN_SAMPLE,
                                      elem_id="inside-tok-text")
                tok_run = gr.Button("Tokenize", variant="primary", scale=1, elem_id="inside-tok-run")
            tok_summary = gr.Markdown(elem_id="inside-tok-summary")
            tok_chips = gr.HTML(elem_id="inside-tok-chips")
            tok_table = gr.Dataframe(headers=TOKEN_HEADERS, interactive=False, label="Tokens", max_height=360,
                                     elem_id="inside-tok-table")
            with gr.Row():
                specials = gr.Dataframe(headers=SPECIAL_HEADERS, interactive=False, label="Special tokens",
                                        elem_id="inside-tok-specials")
                template = gr.HTML(elem_id="inside-tok-template")
            tok_for = gr.State("")  # the base model (fingerprint) the Tokens view was drawn with; "" = none yet

    def seen(choice: Any) -> InsideService:
        return svc.seen_by(view_for(services, choice))

    def on_lens(choice: Any, text: str, use_chat: bool) -> tuple:
        """Summary, charts, table and the model key they were computed for ("" = nothing on screen)."""
        key = model_key(services, choice)  # read first: a change meanwhile leaves a mismatch, so a redraw follows
        try:
            result = seen(choice).lens(text, use_chat)
        except USER_ERRORS as err:
            return warn(err), None, None, [], ""
        return lens_summary(result), lens_top_figure(result), lens_grid_figure(result), result.table(), key

    def on_attention(choice: Any, text: str, use_chat: bool, lay: Any, hd: Any) -> tuple:
        """Always for the prompt box's text and this browser's model now: a slider moved after an edit or a
        model switch must not re-slice the attention of what was there before. Cached, so a move on an
        unchanged prompt only re-slices. The sliders update too: after a switch to a shallower model the value
        is clamped to the new range."""
        key = model_key(services, choice)
        try:
            result = seen(choice).attention(text, use_chat)
            lay, hd = min(int(lay), result.num_layers), min(int(hd), result.num_heads)
            return (attention_summary(result, lay, hd), attention_figure(result, lay, hd),
                    last_token_figure(result, lay, hd), heads_grid_figure(result, lay),
                    gr.Slider(maximum=result.num_layers, value=lay), gr.Slider(maximum=result.num_heads, value=hd),
                    key)
        except USER_ERRORS as err:
            return warn(err), *NONE3, gr.skip(), gr.skip(), ""

    def on_slice(choice: Any, text: str, use_chat: bool, lay: Any, hd: Any, drawn: str) -> tuple:
        if not drawn:  # no attention on screen yet: a slider alone does not run the model
            return (gr.skip(),) * 7
        return on_attention(choice, text, use_chat, lay, hd)

    def on_model_change(choice: Any, text: str, use_chat: bool, lay: Any, hd: Any, lens_drawn: str,
                        attn_drawn: str) -> tuple:
        """This browser's model changed (Decode's mechanism: session_adapter.model_key): a view computed on
        another model is redrawn; one not on screen, or already for this model, is left alone."""
        key = model_key(services, choice)
        lens = (gr.skip(),) * 5 if lens_drawn in ("", key) else on_lens(choice, text, use_chat)
        attn = (gr.skip(),) * 7 if attn_drawn in ("", key) else on_attention(choice, text, use_chat, lay, hd)
        return *lens, *attn

    def on_tokens(text: str) -> tuple:
        try:
            result = svc.tokenize(text)
        except USER_ERRORS as err:
            return warn(err), "", [], [], "", ""
        return (f"{result.summary()} · {services.store.current.name}", token_chips_html(result), token_rows(result),
                special_rows(result), template_html(result), services.store.current.fingerprint)

    def on_base_change(text: str, drawn: str) -> tuple:
        """A model switch changes the tokenizer (an adapter does not): a Tokens view drawn with another is redrawn."""
        return (gr.skip(),) * 6 if drawn in ("", services.store.current.fingerprint) else on_tokens(text)

    lens_in, lens_out = [session, prompt, chat], [lens_md, lens_top, lens_grid, lens_table, lens_for]
    attn_in = [session, prompt, chat, layer, head]
    attn_out = [attn_md, attn_map, last_bars, heads_grid, layer, head, attn_for]
    run_lens.click(on_lens, lens_in, lens_out, **PRIVATE)
    prompt.submit(on_lens, lens_in, lens_out, **PRIVATE)
    for button, example in zip(example_buttons, EXAMPLES):
        button.click(lambda ex=example: ex, None, prompt, queue=False, **PRIVATE).then(
            on_lens, lens_in, lens_out, **PRIVATE)
    run_attn.click(on_attention, attn_in, attn_out, **PRIVATE)
    for control in (layer, head):
        control.input(on_slice, [*attn_in, attn_for], attn_out, trigger_mode="always_last", **PRIVATE)
    # This browser's adapter, or (with `stamp`) the model or the server's adapter it follows, changed.
    triggers = [session.change] + ([stamp.change] if stamp is not None else [])
    gr.on(triggers, on_model_change, [*attn_in, lens_for, attn_for], [*lens_out, *attn_out],
          trigger_mode="always_last", **unseen_progress(lens_for), **PRIVATE)
    tok_out = [tok_summary, tok_chips, tok_table, specials, template, tok_for]
    tok_run.click(on_tokens, tok_text, tok_out, **PRIVATE)
    tok_text.submit(on_tokens, tok_text, tok_out, **PRIVATE)
    if stamp is not None:
        stamp.change(on_base_change, [tok_text, tok_for], tok_out, **unseen_progress(tok_for), **PRIVATE)
    _register_api(svc)


def _register_api(svc: InsideService) -> None:
    """Named endpoints for gradio_client (documented in the README); mistakes come back as a sentence."""

    @api_errors
    def logit_lens(prompt: str, chat: bool = False) -> dict:
        """Logit lens at the last token: per layer the top tokens with probabilities, plus the
        layers × positions grid of top-1 tokens."""
        return svc.lens(prompt, chat).as_api()

    @api_errors
    def attention(prompt: str, chat: bool = False, layer: int = 1, head: int = 0) -> dict:
        """Attention weights of one layer (1…L) and head (1…H, 0 = average over heads) for a prompt of
        at most 256 tokens, and what the last token attends to."""
        return svc.attention_api(prompt, chat, layer, head)

    @api_errors
    def tokenize(text: str) -> dict:
        """The text split into the model's tokens: ids, readable labels, pieces, count, special tokens."""
        return svc.tokenize(text).as_api()

    gr.api(logit_lens, api_name="logit_lens")
    gr.api(attention, api_name="attention")
    gr.api(tokenize, api_name="tokenize")
