"""Decode tab: the next-token distribution under every sampler transformers has (and its waterfall, stage by
stage), step-through generation you can branch from anywhere, beam search tree, temperature explorer,
strategy comparison; the /next_token, /generate and /beam_search API endpoints are in ui/decode_api.py.

Layout and event wiring only; everything computed lives in playground/decode/ (steps.py for the buttons,
branch.py for branching, views.py for what is shown).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.decode.beam import MAX_BEAMS, MAX_STEPS, BeamSettings
from playground.decode.beam_report import FINAL_HEADERS, RAW_SCORES
from playground.decode.branch import branch, follow
from playground.decode.session import DecodeService, StepState
from playground.decode.steps import choose, for_current_model, generate_states, start_from_box, state_for_prompt
from playground.decode.text_view import TEXT_CSS, TEXT_JS
from playground.decode.views import (
    COMPARE_HEADERS,
    TABLE_HEADERS,
    beam_run,
    built_text_html,
    column_widths,
    comparison_stream,
    explorer_figures,
    template_view,
)
from playground.services import Services
from playground.ui.decode_api import register_api
from playground.ui.decode_samplers import TREE_CLICK_JS, more_samplers
from playground.ui.errors import api_errors, unseen_progress, warned
from playground.ui.inputs import Slider
from playground.ui.link_parts import DecodeParts, link_row
from playground.ui.session_adapter import decode_for, model_key
from playground.ui.decode_handlers import (
    cleared_view,
    drawn_updates,
    session_values,
    settings_wrapper,
    step_updates,
    view_updates,
)

EXAMPLES = ["The rain in Spain falls mainly in the", "The capital of France is", "Once upon a time, there was a",
            "def fibonacci(n):", "日本の首都は", "My favourite food is 🍕 because"]
PRIVATE = dict(api_visibility="private")


def build(services: Services, session: gr.State, header: gr.Markdown | None = None,
          stamp: gr.State | None = None, demo: gr.Blocks | None = None) -> DecodeParts:
    """Lay out the Decode tab inside the current gr.Tab; `session`: this browser's adapter choice; `stamp`: the
    app's change signal and `demo` the app (app_ui). Returns the components a link sets (ui/links.py)."""
    svc: DecodeService = services.decode  # the API's (the server's adapter); handlers get their session's
    with_settings = settings_wrapper(services)

    def knob_errors(fn):  # a handler reading the knobs itself (its event's data first): mistakes as with_settings
        return warned(fn, 1)

    gr.Markdown("See how the next token is chosen: the model's raw probabilities, then repetition penalty → "
                "temperature → top-k → top-p → min-p, and every other sampler transformers has under *More "
                "samplers* (transformers' own processors in generate()'s order: exactly what `generate()` "
                "samples from). Click a token to append it; hover a chosen token to branch from there.")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", lines=3, scale=4, elem_id="decode-prompt",
                            value=EXAMPLES[0], placeholder="Type a prompt…")
        with gr.Column(scale=1, min_width=220):
            chat = gr.Checkbox(label="chat (wrap in the model's chat template)", value=False, elem_id="decode-chat")
            run = gr.Button("Show next-token distribution", variant="primary", elem_id="decode-run")
    with gr.Row():
        example_buttons = [gr.Button(text, size="sm", elem_id=f"decode-example-{i}")
                           for i, text in enumerate(EXAMPLES)]
    notice = gr.Markdown(elem_id="decode-notice")
    with gr.Accordion("Show template: the exact string and tokens fed to the model", open=False,
                      elem_id="decode-template-box"):
        template = gr.HTML(elem_id="decode-template")
    with gr.Row():
        temperature = Slider(0, 2, value=1.0, step=0.05, label="temperature (0 = greedy)",
                                elem_id="decode-temperature")
        top_k = Slider(0, 200, value=50, step=1, label="top-k (0 = off)", elem_id="decode-top-k")
        top_p = Slider(0.01, 1, value=1.0, step=0.01, label="top-p (1 = off)", elem_id="decode-top-p")
        min_p = Slider(0, 1, value=0.0, step=0.01, label="min-p (0 = off)", elem_id="decode-min-p")
        penalty = Slider(0.5, 2, value=1.0, step=0.05, label="repetition penalty (1 = off)",
                            elem_id="decode-penalty")
        top_n = Slider(5, 50, value=20, step=1, label="tokens shown", elem_id="decode-top-n")
        seed = gr.Number(value=0, precision=0, label="seed", elem_id="decode-seed")  # range: the handlers' check
    more_sliders, more_texts = more_samplers()
    copy_link, link = link_row("decode")  # ui/links.py wires it
    knobs = [temperature, top_k, top_p, min_p, penalty, *more_sliders, *more_texts]
    state = gr.State(None)
    beam_paths = gr.State(None)

    with gr.Tabs(elem_id="decode-views") as tabs:
        with gr.Tab("Next token", id="decode-next"):
            with gr.Row():
                chart = gr.Plot(label="Next-token distribution", show_label=False, elem_id="decode-chart", scale=1)
                with gr.Column(scale=1):
                    stats = gr.Markdown(elem_id="decode-stats")
                    table = gr.Dataframe(headers=TABLE_HEADERS, label="Top tokens (%)", interactive=False,
                                         elem_id="decode-table", max_height=420, wrap=True,
                                         column_widths=column_widths(TABLE_HEADERS))
            candidates = gr.Radio(label="Click a candidate to append it", choices=[], elem_id="decode-candidates")
            with gr.Row():
                sample = gr.Button("Sample", elem_id="decode-sample")
                greedy = gr.Button("Greedy", elem_id="decode-greedy")
                undo = gr.Button("Undo", elem_id="decode-undo")
                reset = gr.Button("Reset", elem_id="decode-reset")
                n_tokens = gr.Number(value=20, precision=0, label="N",
                                     elem_id="decode-n", min_width=80)
                generate = gr.Button("Generate N tokens", variant="secondary", elem_id="decode-generate")
            text = gr.HTML(elem_id="decode-text", js_on_load=TEXT_JS, css_template=TEXT_CSS)
            with gr.Accordion("Waterfall: the distribution after every stage", open=True):
                waterfall = gr.Plot(show_label=False, elem_id="decode-waterfall")
        with gr.Tab("Beam search", id="decode-beam"):
            with gr.Row():
                beams = Slider(1, MAX_BEAMS, value=3, step=1, label="beam width", elem_id="decode-beams")
                steps = Slider(1, MAX_STEPS, value=5, step=1, label="steps", elem_id="decode-steps")
                length_penalty = Slider(-2, 2, value=1.0, step=0.1, label="length penalty",
                                           elem_id="decode-length-penalty")
                run_beam = gr.Button("Run beam search", variant="primary", elem_id="decode-run-beam")
            gr.Markdown("Beam search continues the text in *Next token*: the prompt plus any tokens chosen there "
                        f"(the text is shown above the tree). {RAW_SCORES}")
            beam_summary = gr.Markdown(elem_id="decode-beam-summary")
            tree = gr.Plot(label="Search tree", elem_id="decode-tree")
            tree_clicks = gr.HTML("<small>Click any node of the tree to continue from it in <i>Next token</i> "
                                  "(or pick it below).</small>", js_on_load=TREE_CLICK_JS,
                                  elem_id="decode-tree-clicks")
            node_pick = gr.Dropdown(label="Continue from a node of the tree", choices=[], value=None,
                                    elem_id="decode-beam-node", filterable=True)
            finals = gr.Dataframe(headers=FINAL_HEADERS, wrap=True,
                                  label="Final beams from generate(num_beams=B) and the greedy path",
                                  interactive=False, elem_id="decode-finals",
                                  column_widths=["8%", "38%", "8%", "12%", "12%", "22%"])
        with gr.Tab("Temperature & strategies", id="decode-explore"):
            explore = gr.Button("Explore temperature for this text", elem_id="decode-explore-run")
            gr.Markdown("Temperature alone (after any repetition penalty); top-k/top-p/min-p are left out here "
                        "so the change of shape shows.")
            sweep_chart = gr.Plot(label="Top-1 probability and entropy vs temperature", elem_id="decode-sweep")
            multiples = gr.Plot(label="The distribution at a few temperatures", elem_id="decode-multiples")
            with gr.Row():
                compare_tokens = Slider(5, 60, value=25, step=1, label="new tokens", elem_id="decode-compare-n")
                compare = gr.Button("Compare greedy · beam · sampled", elem_id="decode-compare-run")
            comparison = gr.Dataframe(headers=COMPARE_HEADERS,
                                      interactive=False, wrap=True, elem_id="decode-comparison",
                                      column_widths=["12%", "20%", "46%", "10%", "12%"])

    view_out = [state, chart, stats, table, candidates, text, waterfall]
    skip_view = [gr.skip()] * len(view_out)

    _view = view_updates

    @with_settings
    def on_prompt(svc, settings, prompt_text, use_chat, n):
        start = start_from_box(svc, None, prompt_text, use_chat)  # an empty box: a sentence, not an error
        if start.state is None:
            return cleared_view(start.note)
        return drawn_updates(svc, settings, None, start, start.state, n)

    @with_settings
    def on_settings(svc, settings, st, n):
        return skip_view if st is None else _view(svc, settings, st, n)

    @with_settings
    def on_model_change(svc, settings, st, n, choice, drawn):
        """The model or this browser's adapter changed: the numbers on screen are another model's. Other changes
        of the app's signal (an adapter saved, renamed…) leave the view alone: a redraw racing a click on Greedy
        could put back the state from before the click."""
        key = model_key(services, choice)
        if key == drawn or st is None:
            return (*skip_view, gr.skip(), gr.skip(), key)
        st, note = for_current_model(svc, st)
        return (*_view(svc, settings, st, n), note or gr.skip(), template_view(svc, st), key)

    @with_settings
    def on_pick(svc, settings, st, n, token_id):
        return skip_view if token_id is None else _view(svc, settings, choose(svc, st, settings, "picked", token_id), n)

    # The step buttons step from the prompt box as it is (steps.start_from_box): on a fresh page, or after the
    # prompt was edited, from the box's prompt; otherwise they continue the text built so far.
    @with_settings
    def on_sample(svc, settings, st, prompt_text, use_chat, n, sd):
        return step_updates(svc, settings, st, prompt_text, use_chat, n,
                            lambda s: choose(svc, s, settings, "sampled", seed=sd))

    @with_settings
    def on_greedy(svc, settings, st, prompt_text, use_chat, n):
        return step_updates(svc, settings, st, prompt_text, use_chat, n, lambda s: choose(svc, s, settings, "greedy"))

    @with_settings
    def on_undo(svc, settings, st, n):
        if st is None or not st.chosen:  # a toast; the view stays as it is
            raise ValueError("Nothing to undo: no token has been added after the prompt yet.")
        return _view(svc, settings, st.undo(), n)

    @with_settings
    def on_reset(svc, settings, st, prompt_text, use_chat, n):
        return step_updates(svc, settings, st, prompt_text, use_chat, n, StepState.reset)

    @with_settings
    def on_generate(svc, settings, st, prompt_text, use_chat, n, count, sd):
        """Stream the coloured text as tokens arrive, then show the distribution after them."""
        start = start_from_box(svc, st, prompt_text, use_chat)
        if start.state is None:
            yield cleared_view(start.note)
            return
        skip = [gr.skip()] * (len(view_out) - 3)
        grown = start.state
        for grown in generate_states(svc, start.state, settings, count, sd):
            yield (grown, *skip, built_text_html(svc.tokenizer(), grown), gr.skip(), gr.skip(), gr.skip())
        yield drawn_updates(svc, settings, st, start, grown, n)

    @knob_errors
    def on_text_branch(evt: gr.EventData, *values):
        """A click in a chosen token's menu: cut the text there, and append the alternative clicked."""
        svc, settings, st, n = session_values(services, values)
        return _view(svc, settings, branch(svc, st, settings, evt.step, evt.alt), n)

    @api_errors
    def on_beam(choice, st, prompt_text, use_chat, b, s, lp):
        svc = decode_for(services, choice)
        st = state_for_prompt(svc, st, prompt_text, use_chat)
        summary, figure, rows, paths = beam_run(svc, st, BeamSettings.from_values(b, s, lp))
        return summary, figure, rows, paths, gr.Dropdown(choices=paths.choices(), value=None)

    def continue_from_node(values: tuple, node_id: Any) -> tuple:
        svc, settings, st, paths, n = session_values(services, values)
        return (*_view(svc, settings, follow(svc, paths, settings, node_id, st), n), gr.Tabs(selected="decode-next"))

    @knob_errors
    def on_tree_click(evt: gr.EventData, *values):
        return continue_from_node(values, evt.node_id)

    @knob_errors
    def on_node_pick(*values):
        return continue_from_node(values[:-1], values[-1]) if values[-1] is not None else \
            (*skip_view, gr.skip())

    @with_settings
    def on_explore(svc, settings, st, prompt_text, use_chat):
        return explorer_figures(svc, state_for_prompt(svc, st, prompt_text, use_chat), settings)

    @with_settings
    def on_compare(svc, settings, st, prompt_text, use_chat, b, count, sd):
        st = state_for_prompt(svc, st, prompt_text, use_chat)
        yield from comparison_stream(svc, st, settings, b, count, sd)

    def knob_inputs(*extra) -> list:
        return [session, *knobs, *extra]

    prompt_in = knob_inputs(prompt, chat, top_n)
    prompt_out = [*view_out, notice, template]
    run.click(on_prompt, prompt_in, prompt_out, **PRIVATE)
    prompt.submit(on_prompt, prompt_in, prompt_out, **PRIVATE)
    chat.input(on_prompt, prompt_in, prompt_out, **PRIVATE)
    for button, example in zip(example_buttons, EXAMPLES):
        button.click(lambda ex=example: ex, None, prompt, queue=False, **PRIVATE).then(
            on_prompt, prompt_in, prompt_out, **PRIVATE)
    # Re-filter on the user's own edits (`input`, not `change`): a link or a lesson step sets every knob at once
    # and draws the view itself, while `change` would fire per knob with the knobs after it not yet applied, and
    # such a half-applied call finishing last left the table on the wrong settings. One listener for all knobs,
    # so "always_last" also orders two quick edits: the later values are always drawn last.
    gr.on([*(k.input for k in [temperature, top_k, top_p, min_p, penalty, *more_sliders, top_n]),
           *(e for box in more_texts for e in (box.submit, box.blur))],  # words: on Enter or leaving the box
          on_settings, knob_inputs(state, top_n), view_out, trigger_mode="always_last", show_progress="hidden",
          **PRIVATE)
    if stamp is not None:  # a model switch, or an adapter activated for the server or this browser
        drawn_for = gr.State("")  # session_adapter.model_key the view was last drawn for
        if demo is not None:  # the page's model when it opens: a link's own draw for it needs no second one
            demo.load(lambda choice: model_key(services, choice), [session], drawn_for, queue=False,
                      show_progress="hidden", **PRIVATE)
        gr.on([stamp.change, session.change], on_model_change, knob_inputs(state, top_n, session, drawn_for),
              [*view_out, notice, template, drawn_for], trigger_mode="always_last",
              **unseen_progress(drawn_for), **PRIVATE)
    candidates.input(on_pick, knob_inputs(state, top_n, candidates), view_out, **PRIVATE)
    box = [state, prompt, chat]  # a step button's state and the prompt box it starts from
    sample.click(on_sample, knob_inputs(*box, top_n, seed), prompt_out, **PRIVATE)
    greedy.click(on_greedy, knob_inputs(*box, top_n), prompt_out, **PRIVATE)
    undo.click(on_undo, knob_inputs(state, top_n), view_out, **PRIVATE)
    reset.click(on_reset, knob_inputs(*box, top_n), prompt_out, **PRIVATE)
    generate.click(on_generate, knob_inputs(*box, top_n, n_tokens, seed), prompt_out, **PRIVATE)
    text.select(on_text_branch, knob_inputs(state, top_n), view_out, **PRIVATE)
    # Beam keeps its last results on a refusal (an empty prompt): a toast, no "Error" over each view (explore and
    # compare read the knobs: with_settings does the same for them)
    run_beam.click(warned(on_beam, 5), [session, state, prompt, chat, beams, steps, length_penalty],
                   [beam_summary, tree, finals, beam_paths, node_pick], **PRIVATE)
    tree_clicks.select(on_tree_click, knob_inputs(state, beam_paths, top_n), [*view_out, tabs], **PRIVATE)
    node_pick.input(on_node_pick, knob_inputs(state, beam_paths, top_n, node_pick), [*view_out, tabs], **PRIVATE)
    explore.click(on_explore, knob_inputs(state, prompt, chat), [sweep_chart, multiples], **PRIVATE)
    compare.click(on_compare, knob_inputs(state, prompt, chat, beams, compare_tokens, seed), comparison,
                  **PRIVATE)
    register_api(svc, services.rooms)
    return DecodeParts(prompt, chat, knobs, seed, top_n, view_out, notice, template, tabs, beams, steps,
                       length_penalty, [beam_summary, tree, finals, beam_paths, node_pick], [sweep_chart, multiples],
                       copy_link, link)
