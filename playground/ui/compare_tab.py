"""Compare tab: base (adapter disabled) vs the active adapter side by side, an optional third adapter,
the "what changed" colouring of the tuned answer, and a held-out evaluation of base vs tuned.

Only layout and wiring; the logic is playground.compare.chat / .diff / .evaluation, and everything the tab
says about the active adapter comes from one place (playground.compare.views.compare_header).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.compare.charts import metrics_figure
from playground.compare.chat import (
    CompareRequest,
    CompareSettings,
    next_histories,
    run_compare,
    stream_compare,
)
from playground.compare.diff import what_changed_html
from playground.compare.evaluation import NO_ADAPTER, EvalRequest, dataset_choices, evaluate
from playground.compare.views import (
    BASE_LABEL,
    column_views,
    compare_header,
    settings_from_controls,
    settings_note,
    shown,
)
from playground.services import Services
from playground.ui.compare_preference import build_preference_eval
from playground.ui.compare_reward import build_reward_eval
from playground.ui.errors import USER_ERRORS, api_errors, warn
from playground.ui.eval_inputs import eval_inputs
from playground.ui.link_parts import CompareParts, link_row
from playground.ui.paths import dataset_read, eval_adapter, held_out_dataset, recipe_or_server_file
from playground.ui.session_adapter import (NO_THIRD, adapter_list, adapter_of, empty_choice, own_adapter,
                                           session_value)
from playground.ui.turns import presenter_first
from playground.ui.inputs import Slider


def build(services: Services, header: gr.Markdown, state: gr.State, session: gr.State) -> CompareParts:
    """`session`: this browser's adapter choice (ui.session_adapter): the tuned column runs it. Returns the
    components a link sets (ui/links.py)."""
    adapters = services.adapters
    first = compare_header(adapters.active())
    hint = gr.Markdown(first.hint, elem_id="pg-compare-hint")
    with gr.Row():
        base_chat = gr.Chatbot(label=BASE_LABEL, height=360, elem_id="pg-compare-base")
        tuned_chat = gr.Chatbot(label=first.tuned_label, height=360, elem_id="pg-compare-tuned")
        other_chat = gr.Chatbot(label="Other adapter", height=360, visible=False, elem_id="pg-compare-other")
    diff = gr.HTML(first.placeholder, elem_id="pg-compare-diff")
    with gr.Row():
        message = gr.Textbox(placeholder="One message, sent to every column…", show_label=False, scale=6,
                             elem_id="pg-compare-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="pg-compare-send")
        clear = gr.Button("Clear", scale=1, elem_id="pg-compare-clear")
    status = gr.Markdown(elem_id="pg-compare-status")
    copy_link, link = link_row("pg-compare")  # ui/links.py wires it
    histories = gr.State({})

    d = CompareSettings()
    note = gr.Markdown(settings_note(d), elem_id="pg-compare-settings-note")
    with gr.Accordion("Settings (shared by every column)", open=False):
        system = gr.Textbox(label="System prompt", lines=2, elem_id="pg-compare-system")
        with gr.Row():
            temperature = Slider(0, 2, value=d.sampling.temperature, step=0.05, label="temperature (0 = greedy)",
                                    elem_id="pg-compare-temperature")
            top_k = Slider(0, 200, value=d.sampling.top_k, step=1, label="top-k (0 = off)")
            top_p = Slider(0.05, 1, value=d.sampling.top_p, step=0.01, label="top-p (1 = off)",
                              elem_id="pg-compare-top-p")
            min_p = Slider(0, 1, value=d.sampling.min_p, step=0.01, label="min-p (0 = off)")
        with gr.Row():
            penalty = Slider(0.5, 2, value=d.sampling.repetition_penalty, step=0.05, label="repetition penalty")
            max_new = Slider(1, 1024, value=d.max_new_tokens, step=1, label="max new tokens",
                                elem_id="pg-compare-max-new")
            seed = gr.Number(value=d.seed, precision=0, label="seed", elem_id="pg-compare-seed")
        other = gr.Dropdown(empty_choice(NO_THIRD), value="", label="Third column: another adapter (optional)",
                            elem_id="pg-compare-other-pick")
    setting_inputs = [system, temperature, top_k, top_p, min_p, penalty, max_new, seed]

    with gr.Accordion("Held-out evaluation: base vs tuned", open=False):
        ev = eval_inputs("eval", dataset_choices(), "pig-latin", dataset_label="Recipe (its test split)",
                        upload_label="…or upload held-out rows (JSONL/JSON/CSV)", rows_label="max rows", rows=60,
                        run_label="Evaluate")
        eval_recipe, eval_file, eval_adapter, eval_rows, eval_btn, eval_status = (
            ev.dataset, ev.upload, ev.adapter, ev.rows, ev.run, ev.status)
        eval_table = gr.Dataframe(headers=["model", "adapter", "loss ↓", "perplexity ↓", "rows"], interactive=False,
                                  elem_id="pg-eval-table")
        eval_plot = gr.Plot(elem_id="pg-eval-plot")
        eval_samples = gr.Dataframe(headers=["reference", "base", "tuned"], interactive=False, wrap=True,
                                    column_widths=["20%", "40%", "40%"], elem_classes=["pg-table"],
                                    label="First answers (greedy): reference · base · tuned",
                                    elem_id="pg-eval-samples")

    build_preference_eval(services, session)  # DPO: preference accuracy and rule win rate (ui.compare_preference)
    build_reward_eval(services, session)  # GRPO: held-out reward, greedy and sampled (ui.compare_reward)
    chats = [base_chat, tuned_chat, other_chat]

    def send_message(choice: Any, text: str, hist: dict, other_name: str, *values: Any):
        try:
            request = CompareRequest(text or "", settings_from_controls(*values),
                                     {k: tuple(v) for k, v in (hist or {}).items()},
                                     other_adapter=(other_name or "").strip() or None, adapter=session_value(choice))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), warn(err), gr.skip(), gr.skip()
            return
        hist = request.histories
        yield (*[shown(hist.get(c, ()), request.message) for c in ("base", "tuned", "other")],
               gr.skip(), "Waiting for the model…", gr.skip(), "")
        try:
            for update in stream_compare(adapters, request):
                views = [gr.update(value=msgs, label=label) for msgs, label in column_views(update, hist,
                                                                                           request.message)]
                if update.result is None:
                    yield *views, gr.skip(), update.status, gr.skip(), gr.skip()
                else:
                    r = update.result
                    yield (*views, what_changed_html(r.changed, r.adapter), "",
                           next_histories(hist, request.message, r), "")
        except USER_ERRORS as err:  # e.g. the conversation no longer fits the context
            gr.Warning(str(err))
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), warn(err), gr.skip(), gr.skip()

    def clear_all(choice: Any):
        return [], [], [], compare_header(adapter_of(services, choice)).placeholder, "", {}

    def refresh(choice: Any, hist: dict, other_name: str, eval_name: str):
        """Everything that names the active adapter or lists adapters, from the current state. The "what
        changed" panel follows too while no turn has been sent (after one, it explains that turn)."""
        h = compare_header(adapter_of(services, choice), hist, other_name)
        names = adapters.library.names()
        return (h.hint, gr.update(label=h.tuned_label), gr.skip() if hist else h.placeholder,
                adapter_list(names, other_name, NO_THIRD), adapter_list(names, eval_name))

    def run_eval(choice: Any, recipe: str, upload: str | None, adapter: str, rows: float, progress=gr.Progress()):
        try:
            dataset = held_out_dataset(services, upload, recipe, "Held-out file")
            name = own_adapter(services, choice, adapter, NO_ADAPTER)  # empty = this browser's adapter
            request = EvalRequest(dataset=dataset, adapter=name, max_rows=int(rows))
            with dataset_read("Held-out file"):
                result = evaluate(adapters, request, lambda f, msg: progress(f, desc=msg))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(err), gr.skip(), gr.skip(), gr.skip()
        return (f"{result.tuned.label} vs base on {result.dataset} ({result.rows} rows). {result.metric_note()}",
                gr.update(value=result.table(), headers=result.headers()), metrics_figure(result),
                gr.update(value=result.samples(), headers=["reference", "base", result.tuned.label],
                          label=result.answers_label()))

    private = {"api_visibility": "private"}
    outputs = [*chats, diff, status, histories, message]
    refreshed = [hint, tuned_chat, diff, other, eval_adapter]
    refresh_inputs = [session, histories, other, eval_adapter]
    turn_inputs = [session, message, histories, other, *setting_inputs]
    send_turn = presenter_first(services.rooms, send_message)
    for turn in (send.click(send_turn, turn_inputs, outputs, **private),
                 message.submit(send_turn, turn_inputs, outputs, **private),
                 clear.click(clear_all, session, [*chats, diff, status, histories], **private)):
        turn.then(refresh, refresh_inputs, refreshed, show_progress="hidden", **private)  # hint follows the history
    other.change(lambda name: gr.update(visible=bool(name)), other, other_chat, **private)
    other.input(lambda choice, hist, name: compare_header(adapter_of(services, choice), hist, name).hint,
                [session, histories, other], hint, show_progress="hidden", **private)  # the hint names the third
    gr.on([s.change for s in setting_inputs], lambda *v: note_of_controls(v), setting_inputs, note,
          show_progress="hidden", **private)
    # triggers=None: on page load and when an input changes (this browser's adapter, the history, a picker).
    gr.on(None, refresh, refresh_inputs, refreshed, show_progress="hidden", **private)
    # The model or the library changed (any tab, any browser, a training run): follow it.
    state.change(refresh, refresh_inputs, refreshed, show_progress="hidden", **private)
    eval_btn.click(run_eval, [session, eval_recipe, eval_file, eval_adapter, eval_rows],
                   [eval_status, eval_table, eval_plot, eval_samples], **private)
    _register_api(services)
    return CompareParts(message, setting_inputs, note, copy_link, link)


def note_of_controls(values: tuple | list) -> Any:
    """The sampling note for these values of the setting controls, in their order (left as it was while a value
    is out of range). Used by the controls' own change events and by a link's restore (ui/links.py)."""
    try:
        return settings_note(settings_from_controls(*values))
    except USER_ERRORS:
        return gr.skip()


def _register_api(services: Services) -> None:
    adapters = services.adapters

    @api_errors
    def compare(message: str, settings: dict, seed: int) -> dict:
        """Send one message to base and tuned (same settings and seed); texts + per-token log-prob deltas."""
        return run_compare(adapters, CompareRequest(message, CompareSettings.from_dict(settings, seed=seed))).as_api()

    @api_errors
    def evaluate_api(adapter: str, dataset: str, max_rows: int = 60) -> dict:
        """Held-out metrics of base vs `adapter` ('' = server default) on a recipe id or a file path, and the first
        answers of both (greedy)."""
        dataset = recipe_or_server_file(services, dataset)  # a file on the server: only where the policy allows
        with dataset_read("dataset"):
            return evaluate(adapters, EvalRequest(dataset, eval_adapter(adapter), max_rows=max_rows)).as_api()

    gr.api(presenter_first(services.rooms, compare), api_name="compare")
    gr.api(evaluate_api, api_name="evaluate")
