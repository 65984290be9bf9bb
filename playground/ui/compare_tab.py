"""Compare tab: base (adapter disabled) vs the active adapter side by side, an optional third adapter,
the "what changed" colouring of the tuned answer, and a held-out evaluation of base vs tuned.

Only layout and wiring; the logic is playground.compare.chat, playground.compare.diff and playground.evaluation.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.compare.chat import NO_ADAPTER_HINT, CompareRequest, CompareSettings, next_histories, run_compare, \
    stream_compare
from playground.compare.diff import what_changed_html
from playground.compare.evaluation import TABLE_HEADERS, EvalRequest, dataset_choices, evaluate, metrics_figure
from playground.services import Services


def _settings(system, temperature, top_k, top_p, min_p, penalty, max_new, seed) -> CompareSettings:
    """The one place the settings components become the settings dataclass."""
    return CompareSettings.from_dict({"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                                      "repetition_penalty": penalty, "max_new_tokens": max_new,
                                      "system_prompt": system or ""}, seed=seed)


def _shown(history: tuple, message: str | None = None, partial: str | None = None) -> list[dict[str, str]]:
    """Chatbot messages: the column's history (role/content only) plus the turn in progress."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in history]
    if message is not None:
        msgs.append({"role": "user", "content": message})
        if partial is not None:
            msgs.append({"role": "assistant", "content": partial or "…"})
    return msgs


def _hint(services: Services) -> str:
    active = services.adapters.active()
    if not active:
        return f"ℹ️ {NO_ADAPTER_HINT}"
    return f"Left: the base model (adapter disabled). Right: adapter **{active}**. Same settings, same seed."


def build(services: Services, header: gr.Markdown) -> None:
    adapters = services.adapters
    hint = gr.Markdown(_hint(services), elem_id="pg-compare-hint")  # refreshed on load and on header change
    with gr.Row():
        base_chat = gr.Chatbot(label="Base (adapter disabled)", height=360, elem_id="pg-compare-base")
        tuned_chat = gr.Chatbot(label="Tuned (active adapter)", height=360, elem_id="pg-compare-tuned")
        other_chat = gr.Chatbot(label="Other adapter", height=360, visible=False, elem_id="pg-compare-other")
    diff = gr.HTML(what_changed_html(None, None), elem_id="pg-compare-diff")
    with gr.Row():
        message = gr.Textbox(placeholder="One message, sent to every column…", show_label=False, scale=6,
                             elem_id="pg-compare-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="pg-compare-send")
        clear = gr.Button("Clear", scale=1, elem_id="pg-compare-clear")
    status = gr.Markdown(elem_id="pg-compare-status")
    histories = gr.State({})

    d = CompareSettings()
    with gr.Accordion("Settings (shared by every column)", open=False):
        system = gr.Textbox(label="System prompt", lines=2, elem_id="pg-compare-system")
        with gr.Row():
            temperature = gr.Slider(0, 2, value=d.sampling.temperature, step=0.05, label="temperature (0 = greedy)",
                                    elem_id="pg-compare-temperature")
            top_k = gr.Slider(0, 200, value=d.sampling.top_k, step=1, label="top-k (0 = off)")
            top_p = gr.Slider(0.05, 1, value=d.sampling.top_p, step=0.01, label="top-p (1 = off)")
            min_p = gr.Slider(0, 1, value=d.sampling.min_p, step=0.01, label="min-p (0 = off)")
        with gr.Row():
            penalty = gr.Slider(0.5, 2, value=d.sampling.repetition_penalty, step=0.05, label="repetition penalty")
            max_new = gr.Slider(1, 1024, value=d.max_new_tokens, step=1, label="max new tokens",
                                elem_id="pg-compare-max-new")
            seed = gr.Number(value=d.seed, precision=0, label="seed", elem_id="pg-compare-seed")
        with gr.Row():
            other = gr.Dropdown([""] + adapters.library.names(), value="", label="Third column: another adapter "
                                "(optional)", scale=4, elem_id="pg-compare-other-pick")
            other_refresh = gr.Button("↻", scale=0, min_width=40)
    setting_inputs = [system, temperature, top_k, top_p, min_p, penalty, max_new, seed]

    with gr.Accordion("Held-out evaluation: base vs tuned", open=False):
        with gr.Row():
            eval_recipe = gr.Dropdown(dataset_choices(), value="pig-latin", label="Recipe (its test split)",
                                      elem_id="pg-eval-recipe")
            eval_file = gr.File(label="…or upload held-out rows (JSONL/JSON/CSV)", type="filepath",
                                file_types=[".jsonl", ".json", ".csv"], elem_id="pg-eval-file")
        with gr.Row():
            eval_adapter = gr.Dropdown([""] + adapters.library.names(), value="", label="Adapter (empty = active)",
                                       elem_id="pg-eval-adapter")
            eval_rows = gr.Slider(1, 500, value=60, step=1, label="max rows")
            eval_btn = gr.Button("Evaluate", variant="primary", elem_id="pg-eval-run")
        eval_status = gr.Markdown(elem_id="pg-eval-status")
        eval_table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="pg-eval-table")
        eval_plot = gr.Plot(elem_id="pg-eval-plot")
        eval_samples = gr.Dataframe(headers=["reference", "base", "tuned"], interactive=False, wrap=True,
                                    label="First answers (Pig Latin)", elem_id="pg-eval-samples")

    chats = [base_chat, tuned_chat, other_chat]

    def send_message(text: str, hist: dict, other_name: str, *values: Any):
        try:
            settings = _settings(*values)
            request = CompareRequest(text or "", settings, {k: tuple(v) for k, v in (hist or {}).items()},
                                     other_adapter=(other_name or "").strip() or None)
        except ValueError as err:
            gr.Warning(str(err))
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"⚠️ {err}", gr.skip(), gr.skip(), gr.skip()
            return
        hist = request.histories
        yield (*[_shown(hist.get(c, ()), request.message, None) for c in ("base", "tuned", "other")],
               gr.skip(), "Waiting for the model…", gr.skip(), "", _hint(services))
        try:
            for update in stream_compare(adapters, request):
                views = []
                for col, chat_label in (("base", "Base (adapter disabled)"), ("tuned", "Tuned"), ("other", "Other")):
                    name = update.adapters.get(col)
                    shown = _shown(hist.get(col, ()), request.message, update.texts.get(col))
                    if col == "tuned" and col not in update.adapters:
                        shown = _shown(hist.get(col, ()), request.message, f"ℹ️ {NO_ADAPTER_HINT}")
                    elif col == "other" and col not in update.adapters:
                        shown = _shown(hist.get(col, ()))
                    label = chat_label if name is None else f"{chat_label}: adapter {name}"
                    views.append(gr.update(value=shown, label=label))
                if update.result is None:
                    yield *views, gr.skip(), update.status, gr.skip(), gr.skip(), gr.skip()
                else:
                    r = update.result
                    yield (*views, what_changed_html(r.changed, r.adapter), r.hint or "",
                           next_histories(hist, request.message, r), "", _hint(services))
        except ValueError as err:  # e.g. the conversation no longer fits the context
            gr.Warning(str(err))
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), f"⚠️ {err}", gr.skip(), gr.skip(), gr.skip()

    def clear_all():
        return [], [], [], what_changed_html(None, None), "", {}

    def show_other(name: str):
        return gr.update(visible=bool(name))

    def refresh_choices():
        names = [""] + adapters.library.names()
        return gr.update(choices=names), gr.update(choices=names), _hint(services)

    def run_eval(recipe: str, upload: str | None, adapter: str, rows: float, progress=gr.Progress()):
        try:
            request = EvalRequest(dataset=upload or recipe or "", adapter=adapter or None, max_rows=int(rows))
            result = evaluate(adapters, request, lambda f, msg: progress(f, desc=msg))
        except (ValueError, OSError) as err:
            gr.Warning(str(err))
            return f"⚠️ {err}", gr.skip(), gr.skip(), gr.skip()
        return (f"✅ {result.tuned.label} vs base on {result.dataset} ({result.rows} rows).", result.table(),
                metrics_figure(result), result.samples())

    private = {"api_visibility": "private"}
    outputs = [*chats, diff, status, histories, message, hint]
    send.click(send_message, [message, histories, other, *setting_inputs], outputs, **private)
    message.submit(send_message, [message, histories, other, *setting_inputs], outputs, **private)
    clear.click(clear_all, None, [*chats, diff, status, histories], **private)
    other.change(show_other, other, other_chat, **private)
    other_refresh.click(refresh_choices, None, [other, eval_adapter, hint], **private)
    gr.on(None, refresh_choices, None, [other, eval_adapter, hint], **private)
    # The header changes whenever the model or active adapter changes (any tab, any session).
    header.change(refresh_choices, None, [other, eval_adapter, hint], show_progress="hidden", **private)
    eval_btn.click(run_eval, [eval_recipe, eval_file, eval_adapter, eval_rows],
                   [eval_status, eval_table, eval_plot, eval_samples], **private)
    _register_api(services)


def _register_api(services: Services) -> None:
    adapters = services.adapters

    def compare(message: str, settings: dict, seed: int) -> dict:
        """Send one message to base and tuned (same settings and seed); texts + per-token log-prob deltas."""
        try:
            request = CompareRequest(message, CompareSettings.from_dict(settings, seed=seed))
            return run_compare(adapters, request).as_api()
        except ValueError as err:
            raise gr.Error(str(err)) from err

    def evaluate_api(adapter: str, dataset: str, max_rows: int = 60) -> dict:
        """Held-out metrics of base vs `adapter` ('' = active) on a recipe id or a file path."""
        try:
            return evaluate(adapters, EvalRequest(dataset, adapter or None, max_rows=max_rows)).as_api()
        except (ValueError, OSError) as err:
            raise gr.Error(str(err)) from err

    gr.api(compare, api_name="compare")
    gr.api(evaluate_api, api_name="evaluate")
