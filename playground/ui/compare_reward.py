"""Compare tab, the reward part: the held-out reward of a GRPO adapter, base vs the adapter it started from vs
tuned (playground.compare.reward_eval), as an accordion and the `/evaluate_rewards` API. Layout and wiring only."""

from __future__ import annotations

from typing import Any

import gradio as gr

from playground.compare.evaluation import NO_ADAPTER
from playground.compare.reward_eval import ANSWER_COLUMNS, RewardEvalRequest, evaluate_rewards
from playground.data.recipes import list_recipes
from playground.services import Services
from playground.ui.errors import USER_ERRORS, api_errors, warn
from playground.ui.eval_inputs import eval_inputs
from playground.ui.paths import dataset_read, eval_adapter, held_out_dataset, recipe_or_server_file
from playground.ui.session_adapter import adapter_list, own_adapter
from playground.ui.inputs import Slider


def build_reward_eval(services: Services, session: gr.State) -> None:
    """`session`: this browser's adapter choice, evaluated when the adapter field is empty."""
    adapters = services.adapters
    choices = [(f"{r.title} (test split)", r.id) for r in list_recipes()]
    samples = Slider(0, 16, value=4, step=1, label="sampled answers a prompt (0 = greedy only)", render=False,
                        info="At the run's temperature, as GRPO samples: their mean is what GRPO maximises.",
                        elem_id="pg-reward-samples")
    with gr.Accordion("Reward evaluation (GRPO): held-out reward, base vs start vs tuned", open=False):
        ev = eval_inputs("reward", choices, "pig-latin", dataset_label="Prompts (a recipe's test split)",
                         upload_label="…or held-out prompts (messages / prompt / instruction rows)",
                         rows_label="max prompts", rows=60, run_label="Evaluate rewards", more=samples.render)
        table = gr.Dataframe(headers=["model", "adapter", "greedy reward ↑"], interactive=False,
                             elem_classes=["pg-table"], elem_id="pg-reward-table")
        answers = gr.Dataframe(headers=list(ANSWER_COLUMNS), interactive=False, wrap=True, max_height=360,
                               column_widths=["22%", "26%", "26%", "26%"], elem_classes=["pg-table"],
                               label="Greedy answers: prompt · base · start · tuned", elem_id="pg-reward-answers")

    def run_reward_eval(choice: Any, recipe_id: str, path: str | None, name: str, n: float, k: float,
                        progress=gr.Progress()):
        try:
            dataset = held_out_dataset(services, path, recipe_id, "Held-out prompts")
            tuned = own_adapter(services, choice, name, NO_ADAPTER)  # empty = this browser's adapter
            with dataset_read("Held-out prompts"):
                result = evaluate_rewards(adapters, RewardEvalRequest(dataset, tuned, max_rows=int(n),
                                                                      samples=int(k)),
                                          lambda f, msg: progress(f, desc=msg))
        except USER_ERRORS as err:
            gr.Warning(str(err))
            return warn(err), gr.skip(), gr.skip()
        headers, body = result.table()
        tuned = result.by_label("tuned")
        sampled = (f" Sampled: the mean over {result.samples} answers a prompt at temperature "
                   f"{result.temperature:g}, the same draws for every model.") if result.samples else ""
        shape = (" The pig_latin rule compares words position by position, so a dropped or added word makes every "
                 "later word wrong. *right word count*: the share of greedy answers with the sentence's number of "
                 "words; *aligned*: the same answers scored with words matched in order. A pig_latin figure that "
                 "rises while *aligned* does not is the answers' length, not better-translated words."
                 ) if tuned.shape else ""
        note = (f"**{tuned.adapter}** on {result.dataset} ({result.rows} held-out prompts), scored by its rewards: "
                f"{result.rules}. Greedy: one answer a prompt, the most likely token each step.{sampled}{shape}")
        return note, gr.update(value=body, headers=headers), result.answer_rows()

    ev.run.click(run_reward_eval, [session, ev.dataset, ev.upload, ev.adapter, ev.rows, samples],
                 [ev.status, table, answers], api_visibility="private")
    ev.adapter.focus(lambda current: adapter_list(adapters.library.names(), current), ev.adapter, ev.adapter,
                     api_visibility="private")

    @api_errors
    def evaluate_reward(adapter: str, dataset: str = "pig-latin", max_rows: int = 60, samples: int = 4) -> dict:
        """Held-out reward of a GRPO adapter ('' = server default) with the rewards it was trained with: greedy answers
        and the mean over `samples` answers a prompt sampled at the run's temperature, base vs start vs tuned,
        on a recipe id (its test split) or a file path."""
        dataset = recipe_or_server_file(services, dataset)
        with dataset_read("dataset"):
            return evaluate_rewards(adapters, RewardEvalRequest(dataset, eval_adapter(adapter), max_rows=max_rows,
                                                                samples=samples)).as_api()

    gr.api(evaluate_reward, api_name="evaluate_rewards")
