"""Decode tab: the next-token distribution under temperature / top-k / top-p / min-p, step-through
generation, beam search tree, temperature explorer, strategy comparison, and the /next_token,
/generate and /beam_search API endpoints.

Layout and event wiring only; everything computed lives in playground/decode_*.py and decoding.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import gradio as gr

from playground.decode.beam import MAX_BEAMS, MAX_STEPS, BeamSettings
from playground.decode.session import DecodeService, StepState, chosen_from_distribution
from playground.decode.stream import GenerateRequest, stream_generate
from playground.decode.views import (
    TABLE_HEADERS,
    api_beam_search,
    api_generate,
    api_next_token,
    beam_view,
    built_text_html,
    comparison_rows,
    distribution_view,
    explorer_figures,
    template_view,
)
from playground.decode.sampling import SamplingSettings, check_int, greedy_token, sample_token
from playground.model.sources import ModelLoadError
from playground.services import Services

EXAMPLES = ["The rain in Spain falls mainly in the", "The capital of France is", "Once upon a time, there was a",
            "def fibonacci(n):", "日本の首都は", "My favourite food is 🍕 because"]
PRIVATE = dict(api_visibility="private")


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Logic raises ValueError/ModelLoadError with a sentence for the user; show it, never a traceback."""
    try:
        yield
    except (ValueError, ModelLoadError) as err:
        raise gr.Error(str(err)) from err


def _settings(temperature, top_k, top_p, min_p, repetition_penalty) -> SamplingSettings:
    with _user_errors():
        return SamplingSettings.from_values(temperature, top_k, top_p, min_p, repetition_penalty)


def build(services: Services, header: gr.Markdown | None = None) -> None:
    """Lay out the Decode tab inside the current gr.Tab."""
    svc: DecodeService = getattr(services, "decode", None) or DecodeService(services.store)

    gr.Markdown("See how the next token is chosen: the model's raw probabilities, then repetition penalty → "
                "temperature → top-k → top-p → min-p (transformers' own processors, exactly what `generate()` "
                "samples from). Click a token to append it and see the next distribution.")
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
    with gr.Accordion("Show template: the exact string and tokens fed to the model", open=False):
        template = gr.HTML(elem_id="decode-template")
    with gr.Row():
        temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="temperature (0 = greedy)",
                                elem_id="decode-temperature")
        top_k = gr.Slider(0, 200, value=50, step=1, label="top-k (0 = off)", elem_id="decode-top-k")
        top_p = gr.Slider(0.01, 1, value=1.0, step=0.01, label="top-p (1 = off)", elem_id="decode-top-p")
        min_p = gr.Slider(0, 1, value=0.0, step=0.01, label="min-p (0 = off)", elem_id="decode-min-p")
        penalty = gr.Slider(0.5, 2, value=1.0, step=0.05, label="repetition penalty (1 = off)",
                            elem_id="decode-penalty")
        top_n = gr.Slider(5, 50, value=20, step=1, label="tokens shown", elem_id="decode-top-n")
        seed = gr.Number(value=0, precision=0, label="seed", minimum=0, elem_id="decode-seed")
    knobs = [temperature, top_k, top_p, min_p, penalty]
    state = gr.State(None)

    with gr.Tabs():
        with gr.Tab("Next token", id="decode-next"):
            with gr.Row():
                chart = gr.Plot(label="Next-token distribution", elem_id="decode-chart", scale=3)
                with gr.Column(scale=2):
                    stats = gr.Markdown(elem_id="decode-stats")
                    table = gr.Dataframe(headers=TABLE_HEADERS, label="Top tokens (%)", interactive=False,
                                         elem_id="decode-table", max_height=360,
                                         column_widths=["11%", "22%", "13%", "15%", "15%", "12%", "12%"])
            candidates = gr.Radio(label="Click a candidate to append it", choices=[], elem_id="decode-candidates")
            with gr.Row():
                sample = gr.Button("Sample", elem_id="decode-sample")
                greedy = gr.Button("Greedy", elem_id="decode-greedy")
                undo = gr.Button("Undo", elem_id="decode-undo")
                reset = gr.Button("Reset", elem_id="decode-reset")
                n_tokens = gr.Number(value=20, precision=0, minimum=1, maximum=200, label="N",
                                     elem_id="decode-n", min_width=80)
                generate = gr.Button("Generate N tokens", variant="secondary", elem_id="decode-generate")
            text = gr.HTML(elem_id="decode-text")
        with gr.Tab("Beam search", id="decode-beam"):
            with gr.Row():
                beams = gr.Slider(1, MAX_BEAMS, value=3, step=1, label="beam width", elem_id="decode-beams")
                steps = gr.Slider(1, MAX_STEPS, value=5, step=1, label="steps", elem_id="decode-steps")
                length_penalty = gr.Slider(-2, 2, value=1.0, step=0.1, label="length penalty",
                                           elem_id="decode-length-penalty")
                run_beam = gr.Button("Run beam search", variant="primary", elem_id="decode-run-beam")
            beam_summary = gr.Markdown(elem_id="decode-beam-summary")
            tree = gr.Plot(label="Search tree", elem_id="decode-tree")
            finals = gr.Dataframe(headers=["rank", "sequence", "score (generate)", "sum log-prob", "probability"],
                                  label="Final beams from generate(num_beams=B) and the greedy path",
                                  interactive=False, elem_id="decode-finals")
        with gr.Tab("Temperature & strategies", id="decode-explore"):
            explore = gr.Button("Explore temperature for this text", elem_id="decode-explore-run")
            gr.Markdown("Temperature alone (after any repetition penalty); top-k/top-p/min-p are left out here "
                        "so the change of shape shows.")
            sweep_chart = gr.Plot(label="Top-1 probability and entropy vs temperature", elem_id="decode-sweep")
            multiples = gr.Plot(label="The distribution at a few temperatures", elem_id="decode-multiples")
            with gr.Row():
                compare_tokens = gr.Slider(5, 60, value=25, step=1, label="new tokens", elem_id="decode-compare-n")
                compare = gr.Button("Compare greedy · beam · sampled", elem_id="decode-compare-run")
            comparison = gr.Dataframe(headers=["strategy", "settings", "continuation", "log-prob", "mean token prob"],
                                      interactive=False, wrap=True, elem_id="decode-comparison",
                                      column_widths=["12%", "20%", "46%", "10%", "12%"])

    view_out = [state, chart, stats, table, candidates, text]

    def _view(st: StepState, settings: SamplingSettings, n):
        with _user_errors():
            v = distribution_view(svc, st, settings, check_int("top_n", n, 1, 200))
        return st, v.figure, v.stats, v.table, gr.Radio(choices=v.candidates, value=None), v.text_html

    def _current(st: StepState | None, prompt_text: str, use_chat: bool) -> StepState:
        """The step state when it matches the prompt box, else a fresh one for the box's text."""
        if st is not None and st.prompt.text == prompt_text and st.prompt.chat == bool(use_chat):
            return st
        with _user_errors():
            return StepState(prompt=svc.encode(prompt_text, use_chat))

    def on_prompt(prompt_text, use_chat, t, k, p, m, r, n):
        settings = _settings(t, k, p, m, r)
        with _user_errors():
            st = StepState(prompt=svc.encode(prompt_text, use_chat))
        return (*_view(st, settings, n), st.prompt.notice, template_view(svc, st))

    def on_settings(st, t, k, p, m, r, n):
        if st is None:
            return [gr.skip()] * len(view_out)
        return _view(st, _settings(t, k, p, m, r), n)

    def _choose(st, settings, n, pick, how):
        if st is None:
            raise gr.Error("Show a next-token distribution first.")
        with _user_errors():
            dist = svc.distribution(st.ids, settings, st.session_id)
            token_id = pick(dist)
            st = st.append(chosen_from_distribution(dist, svc.tokenizer(), token_id, how))
        return _view(st, settings, n)

    def on_pick(st, token_id, t, k, p, m, r, n):
        if token_id is None:
            return [gr.skip()] * len(view_out)
        return _choose(st, _settings(t, k, p, m, r), n, lambda _d: int(token_id), "picked")

    def on_sample(st, t, k, p, m, r, n, sd):
        with _user_errors():
            sd = check_int("seed", sd, 0, 2**32 - 1)
        return _choose(st, _settings(t, k, p, m, r), n,
                       lambda d: sample_token(d, sd, len(st.chosen) if st else 0), "sampled")

    def on_greedy(st, t, k, p, m, r, n):
        return _choose(st, _settings(t, k, p, m, r), n, greedy_token, "greedy")

    def on_undo(st, t, k, p, m, r, n):
        if st is None:
            return [gr.skip()] * len(view_out)
        return _view(st.undo(), _settings(t, k, p, m, r), n)

    def on_reset(st, t, k, p, m, r, n):
        if st is None:
            return [gr.skip()] * len(view_out)
        return _view(st.reset(), _settings(t, k, p, m, r), n)

    def on_generate(st, t, k, p, m, r, n, count, sd):
        """Stream the coloured text as tokens arrive, then show the distribution after them."""
        if st is None:
            raise gr.Error("Show a next-token distribution first.")
        settings = _settings(t, k, p, m, r)
        tokenizer = svc.tokenizer()
        skip = [gr.skip()] * (len(view_out) - 2)
        with _user_errors():
            request = GenerateRequest(st.ids, settings, check_int("N", count, 1, 200), check_int("seed", sd, 0, 2**32 - 1))
            tokens = []
            for tokens in stream_generate(svc.store, request):
                grown = st.extend(tokens)  # the state follows the stream, so Undo mid-stream acts on what is shown
                yield (grown, *skip, built_text_html(tokenizer, grown))
        yield _view(st.extend(tokens), settings, n)

    def on_beam(st, prompt_text, use_chat, b, s, lp):
        st = _current(st, prompt_text, use_chat)
        with _user_errors():
            result, figure, rows = beam_view(svc, st, BeamSettings.from_values(b, s, lp))
        return result.summary(), figure, rows

    def on_explore(st, prompt_text, use_chat, t, k, p, m, r):
        st = _current(st, prompt_text, use_chat)
        with _user_errors():
            return explorer_figures(svc, st, _settings(t, k, p, m, r))

    def on_compare(st, prompt_text, use_chat, t, k, p, m, r, b, count, sd):
        st = _current(st, prompt_text, use_chat)
        with _user_errors():
            return comparison_rows(svc, st, _settings(t, k, p, m, r), check_int("beam width", b, 1, MAX_BEAMS),
                                   check_int("new tokens", count, 1, 200), check_int("seed", sd, 0, 2**32 - 1))

    prompt_in = [prompt, chat, *knobs, top_n]
    prompt_out = [*view_out, notice, template]
    run.click(on_prompt, prompt_in, prompt_out, **PRIVATE)
    prompt.submit(on_prompt, prompt_in, prompt_out, **PRIVATE)
    chat.input(on_prompt, prompt_in, prompt_out, **PRIVATE)
    for button, example in zip(example_buttons, EXAMPLES):
        button.click(lambda ex=example: ex, None, prompt, queue=False, **PRIVATE).then(
            on_prompt, prompt_in, prompt_out, **PRIVATE)
    for knob in [*knobs, top_n]:
        knob.change(on_settings, [state, *knobs, top_n], view_out, trigger_mode="always_last",
                    show_progress="hidden", **PRIVATE)
    candidates.input(on_pick, [state, candidates, *knobs, top_n], view_out, **PRIVATE)
    sample.click(on_sample, [state, *knobs, top_n, seed], view_out, **PRIVATE)
    greedy.click(on_greedy, [state, *knobs, top_n], view_out, **PRIVATE)
    undo.click(on_undo, [state, *knobs, top_n], view_out, **PRIVATE)
    reset.click(on_reset, [state, *knobs, top_n], view_out, **PRIVATE)
    generate.click(on_generate, [state, *knobs, top_n, n_tokens, seed], view_out, **PRIVATE)
    run_beam.click(on_beam, [state, prompt, chat, beams, steps, length_penalty], [beam_summary, tree, finals],
                   **PRIVATE)
    explore.click(on_explore, [state, prompt, chat, *knobs], [sweep_chart, multiples], **PRIVATE)
    compare.click(on_compare, [state, prompt, chat, *knobs, beams, compare_tokens, seed], comparison, **PRIVATE)
    _register_api(svc)


def _register_api(svc: DecodeService) -> None:
    """Named endpoints for gradio_client: /next_token, /generate, /beam_search (documented in the README)."""

    def next_token(prompt: str, chat: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                   min_p: float = 0.0, repetition_penalty: float = 1.0, top_n: int = 20) -> dict:
        """Next-token distribution: rows of token, id, prob (raw), after_temperature, final_prob, cumulative,
        rank, kept, removed_by; plus entropy_bits, effective_choices, mass_kept."""
        settings = _settings(temperature, top_k, top_p, min_p, repetition_penalty)
        with _user_errors():
            return api_next_token(svc, prompt, chat, settings, check_int("top_n", top_n, 1, 1000))

    def generate(prompt: str, chat: bool = False, temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0,
                 min_p: float = 0.0, repetition_penalty: float = 1.0, max_new_tokens: int = 20,
                 seed: int = 0) -> dict:
        """Generate with these settings (same as model.generate with the seed): text and per-token probabilities."""
        settings = _settings(temperature, top_k, top_p, min_p, repetition_penalty)
        with _user_errors():
            return api_generate(svc, prompt, chat, settings, check_int("max_new_tokens", max_new_tokens, 1, 512),
                                check_int("seed", seed, 0, 2**32 - 1))

    def beam_search(prompt: str, num_beams: int = 3, steps: int = 5, length_penalty: float = 1.0,
                    chat: bool = False) -> dict:
        """Beam search: generate()'s ranked sequences with scores, the greedy path, and the search tree."""
        with _user_errors():
            return api_beam_search(svc, prompt, chat, BeamSettings.from_values(num_beams, steps, length_penalty))

    gr.api(next_token, api_name="next_token")
    gr.api(generate, api_name="generate")
    gr.api(beam_search, api_name="beam_search")
