"""Compare tab, the preference part: held-out preference accuracy and rule win rate of a DPO adapter vs the base
(playground.compare.preference_eval), as an accordion and the `/evaluate_preference` API. Layout and wiring only."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.compare.evaluation import NO_ADAPTER, recipe_method
from playground.compare.preference_eval import PreferenceEvalRequest, evaluate_preferences
from playground.data.recipes import list_recipes
from playground.services import Services
from playground.ui.errors import USER_ERRORS, api_errors, warn
from playground.ui.eval_inputs import eval_inputs
from playground.ui.paths import dataset_read, eval_adapter, held_out_dataset, recipe_or_server_file
from playground.ui.session_adapter import adapter_list, own_adapter


def preference_choices() -> list[tuple[str, str]]:
    """Recipes made for DPO (their test split holds preference pairs); the others have no pairs to rank."""
    return [(f"{r.title} (test split)", r.id) for r in list_recipes() if recipe_method(r) == "dpo"]


def build_preference_eval(services: Services, session: gr.State) -> None:
    """`session`: this browser's adapter choice, evaluated when the adapter field is empty."""
    adapters = services.adapters
    choices = preference_choices()
    with gr.Accordion("Preference evaluation (DPO): preference accuracy and win rate, base vs tuned", open=False):
        ev = eval_inputs("pref", choices, choices[0][1] if choices else None, dataset_label="Preference recipe",
                        upload_label="…or held-out pairs (prompt / chosen / rejected)", rows_label="max pairs",
                        rows=50, run_label="Evaluate preferences")
        recipe, upload, adapter, rows, run, status = ev.dataset, ev.upload, ev.adapter, ev.rows, ev.run, ev.status
        table = gr.Dataframe(headers=["model", "preference accuracy", "prefers chosen", "win rate"],
                             interactive=False, elem_id="pg-pref-table")
        answers = gr.Dataframe(headers=["prompt", "base", "tuned"], interactive=False, wrap=True, max_height=360,
                               elem_id="pg-pref-answers")

    # Not named `evaluate`: Gradio names every event after its function, and `/evaluate` is the Compare API's.
    def run_preference_eval(choice: Any, recipe_id: str, path: str | None, name: str, n: float,
                            progress=gr.Progress()):
        try:
            dataset = held_out_dataset(services, path, recipe_id, "Held-out pairs")
            tuned = own_adapter(services, choice, name, NO_ADAPTER)  # empty = this browser's adapter
            with dataset_read("Held-out pairs"):
                result = evaluate_preferences(adapters, PreferenceEvalRequest(dataset, tuned, max_rows=int(n)),
                                              lambda f, msg: progress(f, desc=msg))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(err), gr.skip(), gr.skip()
        headers, body = result.table()
        ref = f"the adapter it started from ({result.reference})" if result.reference else "the base model"
        rule = f" Win rate: share of greedy answers that follow the rule: {result.rule}." if result.rule else ""
        note = (f"**{result.adapter}** vs base on {result.dataset} ({result.rows} held-out pairs). Preference "
                f"accuracy: share of pairs whose implicit reward (log-ratio to {ref}) ranks chosen above "
                f"rejected. Prefers chosen: the model's own log-probability ranks chosen first.{rule}")
        shown = [[p, b, t] for p, b, t in zip(result.prompts, result.base_answers, result.tuned_answers)][:20]
        return note, gr.update(value=body, headers=headers), shown

    run.click(run_preference_eval, [session, recipe, upload, adapter, rows], [status, table, answers],
              api_visibility="private")
    adapter.focus(lambda current: adapter_list(adapters.library.names(), current), adapter, adapter,
                  api_visibility="private")

    @api_errors
    def evaluate_preference(adapter: str, dataset: str, max_rows: int = 50) -> dict:
        """Held-out preference accuracy (implicit reward), the models' own log-prob preference and the rule win
        rate of greedy answers, base vs `adapter` ('' = server default), on a preference recipe id or a file path."""
        dataset = recipe_or_server_file(services, dataset)
        with dataset_read("dataset"):
            return evaluate_preferences(adapters, PreferenceEvalRequest(dataset, eval_adapter(adapter),
                                                                        max_rows=max_rows)).as_api()

    gr.api(evaluate_preference, api_name="evaluate_preference")
