"""SFT | DPO | GRPO: the method settings (schema fields), preference data and its named errors, the reward rules,
the sign-off recipe and its rule, and the live view's reward metrics (no training here: see
test_train_methods_run.py)."""

from __future__ import annotations

import json
import time

import pytest

from playground.data.loading import RawData
from playground.data.preference import format_preference, prepare_preference, to_preference_row
from playground.data.sources import DataSource
from playground.train.config import SETTINGS, TrainJobConfig, apply_overrides
from playground.train.form import form_fields, recipe_config, request_config

PAIR = {"prompt": "What is 2+2?", "chosen": "4. Hope this helps!", "rejected": "4."}


def test_method_settings_are_schema_fields_on_the_form():
    for name in ("method", "start_adapter", "beta", "loss_type", "sft_weight", "max_prompt_length",
                 "max_completion_length", "num_generations", "kl_beta", "temperature", "reward_pig_latin",
                 "reward_length", "length_target", "reward_regex", "regex", "reward_words", "must_include",
                 "must_exclude", "sample_every"):
        assert name in SETTINGS, name
    fields = form_fields()
    data = [f.name for f in fields if f.section == "data"]
    assert data[0] == "method"  # the method is picked first, then the data it needs
    assert next(f for f in fields if f.name == "start_adapter").section == "lora"
    assert next(f for f in fields if f.name == "beta").section == "train"
    assert SETTINGS["loss_type"].choice_values()[0] == "sigmoid" and "ipo" in SETTINGS["loss_type"].choice_values()


def test_recipes_and_api_pick_the_method():
    assert recipe_config("sign-off").tuning.method == "dpo"
    assert recipe_config("pig-latin-grpo").tuning.method == "grpo"
    assert recipe_config("pig-latin").tuning.method == "sft"
    cfg = request_config("sign-off", '{"beta": 0.3, "loss_type": "ipo", "max_steps": 5}')
    assert (cfg.tuning.method, cfg.tuning.beta, cfg.tuning.loss_type, cfg.train.max_steps) == ("dpo", 0.3, "ipo", 5)
    cfg = request_config("pig-latin", '{"method": "grpo", "num_generations": 2, "batch_size": 4}')
    assert cfg.tuning.method == "grpo" and cfg.tuning.num_generations == 2
    roundtrip = TrainJobConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert roundtrip.tuning == cfg.tuning
    old = cfg.to_dict()
    old.pop("tuning")  # a run folder written before methods existed is an SFT run
    assert TrainJobConfig.from_dict(old).tuning.method == "sft"


@pytest.mark.parametrize("overrides, sentence", [
    ({"method": "ppo"}, "Method must be sft, dpo or grpo (got 'ppo')."),
    ({"method": "dpo", "loss_type": "magic"}, "Unknown DPO loss type 'magic'."),
    ({"method": "dpo", "beta": 0}, "DPO beta must be greater than 0 (got 0.0)."),
    ({"method": "grpo", "reward_pig_latin": 0}, "GRPO needs at least one reward with a weight above 0."),
    ({"method": "grpo", "batch_size": 6, "num_generations": 4}, "must be a multiple of the generations per prompt"),
    ({"method": "grpo", "num_generations": 1}, "Generations per prompt must be a whole number of at least 2"),
    ({"method": "grpo", "reward_regex": 1, "regex": "(unclosed"},
     "Pattern (regular expression): '(unclosed' is not a valid regular expression"),
    ({"method": "grpo", "reward_regex": 1, "regex": ""},
     "The pattern reward is on but the pattern is empty: fill in Pattern (regular expression)."),
    ({"method": "grpo", "reward_words": 1}, "The word reward is on but no required or banned words are given."),
])
def test_method_validation_sentences(overrides, sentence):
    with pytest.raises(ValueError) as err:
        apply_overrides(TrainJobConfig(), {"batch_size": 4, **overrides}).validate("cpu")
    assert sentence in str(err.value)


# ---------------------------------------------------------------- preference data

def raw(rows: list[dict]) -> RawData:
    from datasets import Dataset

    return RawData(Dataset.from_list(rows), "pairs.jsonl", "")


@pytest.mark.parametrize("bad, sentence", [
    ({"rejected": None}, "Row 2: the rejected answer is missing."),
    ({"rejected": "  "}, "Row 2: the rejected answer is missing."),
    ({"chosen": ""}, "Row 2: the chosen answer is missing."),
    ({"rejected": "4. Hope this helps! "}, "Row 2: the chosen and rejected answers are the same"),
    ({"prompt": ""}, "Row 2: the prompt is empty."),
])
def test_bad_pairs_are_named(bad, sentence):
    rows = [PAIR, {**PAIR, **bad}]
    with pytest.raises(ValueError, match="^" + sentence.replace("(", r"\(").replace(".", r"\.")):
        format_preference(raw(rows), DataSource(kind="file", path="x.jsonl"))


def test_missing_columns_and_formats_are_explained():
    with pytest.raises(ValueError, match="DPO needs a 'rejected' column"):
        format_preference(raw([{"prompt": "p", "chosen": "a"}] * 2), DataSource(kind="file", path="x"))
    with pytest.raises(ValueError, match="set Format to Auto-detect"):
        format_preference(raw([PAIR] * 2), DataSource(kind="file", path="x", format="messages"))
    mapped = DataSource(kind="file", path="x", columns={"chosen": "good_one", "rejected": "bad_one"})
    rows = [{"question": "q", "good_one": "yes", "bad_one": "no"}] * 2
    ds, cols = format_preference(raw(rows), mapped)
    assert cols == {"prompt": "question", "chosen": "good_one", "rejected": "bad_one"}
    assert ds[0]["chosen"] == [{"role": "assistant", "content": "yes"}]  # wrapped in the chat template's roles


def test_plain_conversational_and_implicit_prompt_rows():
    plain = to_preference_row(PAIR, 1, {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}, chat=False)
    assert plain == PAIR
    conv = to_preference_row({"chosen": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello!"}],
                              "rejected": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}]},
                             3, {"chosen": "chosen", "rejected": "rejected"}, chat=True)
    assert conv["prompt"] == [{"role": "user", "content": "hi"}]  # the shared leading turns
    assert conv["chosen"] == [{"role": "assistant", "content": "hello!"}]
    as_json = to_preference_row({"prompt": "hi", "chosen": '[{"role": "assistant", "content": "a"}]',
                                 "rejected": '[{"role": "assistant", "content": "b"}]'}, 1,
                                {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}, chat=True)
    assert as_json["prompt"] == [{"role": "user", "content": "hi"}]  # CSV cells holding JSON conversations


def test_from_value_pairs_are_read_like_from_value_sft_chats_and_bad_turns_are_named():
    """SFT rows took from/value turns (TRL's maybe_convert_to_chatml) while DPO refused the same turns:
    one message check now reads both."""
    cols = {"chosen": "chosen", "rejected": "rejected"}
    row = {"chosen": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "hello!"}],
           "rejected": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "go"}]}
    conv = to_preference_row(row, 4, cols, chat=True)
    assert conv == {"prompt": [{"role": "user", "content": "hi"}],
                    "chosen": [{"role": "assistant", "content": "hello!"}],
                    "rejected": [{"role": "assistant", "content": "go"}]}
    bad = {**row, "rejected": [{"role": "robot", "content": "go"}]}
    with pytest.raises(ValueError, match=r"^Row 4: unknown message role 'robot' \(system, user, assistant or tool\)"):
        to_preference_row(bad, 4, cols, chat=True)
    with pytest.raises(ValueError, match=r"^Row 5: the chosen answer should be a non-empty list of \{role, content\}"):
        to_preference_row({**row, "chosen": [1, 2]}, 5, cols, chat=True)


# ---------------------------------------------------------------- the bundled preference recipe and its rule

def test_sign_off_recipe_pairs_follow_the_rule_and_are_split():
    from playground.data.recipes import get_recipe
    from playground.data.sign_off import SIGN_OFF, follows_rule

    recipe = get_recipe("sign-off")
    train = [json.loads(line) for line in recipe.train.read_text().splitlines()]
    test = [json.loads(line) for line in recipe.test.read_text().splitlines()]
    assert len(train) + len(test) >= 300 and len(test) >= 40
    prompts = [r["prompt"][0]["content"].casefold() for r in train + test]
    assert len(set(prompts)) == len(prompts)  # no prompt in both splits
    for r in train + test:
        assert follows_rule(r["chosen"][0]["content"]) and not follows_rule(r["rejected"][0]["content"])
        assert r["chosen"][0]["content"].startswith(r["rejected"][0]["content"].split(". ")[0])
    assert recipe.probe in {r["prompt"][0]["content"] for r in test}
    assert not follows_rule(SIGN_OFF) and not follows_rule(f"{SIGN_OFF} {SIGN_OFF}")  # gaming it does not count
    assert follows_rule(f"Boil it for six minutes. {SIGN_OFF}  ")
    data = prepare_preference(DataSource(recipe="sign-off", eval_fraction=0.05))
    assert data.format == "preference" and data.rows == len(train) and len(data.eval) == 15


# ---------------------------------------------------------------- rewards

def test_reward_rules_score_zero_to_one():
    from playground.train.methods import MethodSettings
    from playground.data.reward_rules import (pig_latin_reference, pig_latin_shape, score_length, score_pig_latin,
                                              score_regex, score_words)
    from playground.train.rewards import build_rewards

    assert pig_latin_reference("Translate to Pig Latin: The cat sat.") == "ethay atcay atsay."
    assert pig_latin_reference("The cat sat.") == "ethay atcay atsay."  # no prefix: the whole prompt
    assert score_pig_latin("Translate to Pig Latin: The cat sat.", "Ethay atcay atsay.") == 1.0
    assert score_pig_latin("Translate to Pig Latin: The cat sat.", "ethay cat atsay.") == pytest.approx(2 / 3)
    # rambling on after the translation costs as much as leaving words out
    assert score_pig_latin("Translate to Pig Latin: The cat sat.", "ethay atcay atsay. awayaway") == 0.75
    # what a score is made of: a dropped word costs every later one positionally, only itself aligned
    assert score_pig_latin("Translate to Pig Latin: The cat sat.", "Ethay atsay.") == 0.5 / 1.5
    assert pig_latin_shape("Translate to Pig Latin: The cat sat.", "Ethay atsay.") == (False, pytest.approx(2 / 3))
    assert pig_latin_shape("The cat sat.", " ethay atway atsay.") == (True, pytest.approx(2 / 3))
    assert score_length("one two three four", 4) == 1.0 and score_length("a " * 8, 4) == 0.0
    assert score_length("one two", 4) == 0.5
    assert score_regex("HELLO!", r"^[A-Z]+!$") == 1.0 and score_regex("hello", r"^[A-Z]+!$") == 0.0
    started = time.monotonic()  # a pattern that backtracks for ever stops with a sentence, not a stalled step
    with pytest.raises(ValueError, match=r"took over 0.5 s on one answer: it backtracks catastrophically"):
        score_regex("a" * 40 + "!", r"^(a|aa)+$")
    assert time.monotonic() - started < 5
    assert score_words("I hope this helps", ["hope", "this helps"], []) == 1.0
    assert score_words("hopeful", ["hope"], []) == 0.0  # whole words only
    assert score_words("bye, I hope", ["hope"], ["bye"]) == 0.0
    rules = build_rewards(MethodSettings(method="grpo", reward_length=0.5, length_target=3))
    assert [r.__name__ for r in rules] == ["pig_latin", "length"] and [r.weight for r in rules] == [1.0, 0.5]
    chat = [[{"role": "user", "content": "Translate to Pig Latin: hello"}]]
    assert rules[0](chat, [[{"role": "assistant", "content": "ellohay"}]]) == [1.0]
    assert rules[0].last == [("Translate to Pig Latin: hello", "ellohay", 1.0)]


# ---------------------------------------------------------------- events -> status -> live view

def test_reward_metrics_reach_the_status_and_the_charts():
    from playground.train.method_events import reward_metrics
    from playground.train.method_views import method_markdown, reward_figure, sample_rows
    from playground.train.status import EventSummary, summarize

    train, evals = reward_metrics({"loss": 0.6, "rewards/chosen": 0.2, "rewards/rejected": -0.1,
                                   "rewards/margins": 0.3, "rewards/accuracies": 1.0, "eval_rewards/margins": 0.25,
                                   "grad_norm": float("nan")})
    assert train == {"rewards/chosen": 0.2, "rewards/rejected": -0.1, "rewards/margins": 0.3,
                     "rewards/accuracies": 1.0} and evals == {"rewards/margins": 0.25}
    s = EventSummary()
    s.add([{"type": "start", "t": 1.0}, {"type": "method", "t": 1.1, "method": "dpo", "reference": "the base model"},
           {"type": "metrics", "t": 2.0, "step": 1, "mode": "train", "values": train},
           {"type": "metrics", "t": 2.1, "step": 1, "mode": "eval", "values": evals}])
    st = summarize("r", s, alive=True)
    assert st.method == "dpo" and st.rewards == [{"step": 1, **train}] and st.eval_rewards[0]["rewards/margins"] == 0.25
    assert "margin 0.300" in method_markdown(st) and "the base model" in method_markdown(st)
    names = {t.name for t in reward_figure(st).data}
    assert {"chosen reward", "rejected reward", "margin", "accuracy", "eval margin"} <= names
    assert "rewards" in st.to_dict() and st.to_dict()["rewards"][0]["rewards/accuracies"] == 1.0

    s.add([{"type": "method", "t": 3, "method": "grpo", "rewards": "1 × pig_latin"},
           {"type": "metrics", "t": 3, "step": 2, "mode": "train",
            "values": {"reward": 0.4, "reward_std": 0.1, "rewards/pig_latin/mean": 0.4, "kl": 0.01,
                       "completions/mean_length": 12.0}},
           {"type": "samples", "t": 3, "step": 2, "samples": [{"prompt": "p", "answer": "a", "reward": 0.4,
                                                               "parts": {"pig_latin": 0.4}}]}])
    st = summarize("r", s, alive=True)
    names = {t.name for t in reward_figure(st).data}
    assert {"total reward", "spread", "pig_latin (unweighted)", "answer length", "KL"} <= names
    assert not names & {"samples' entropy (nats)", "prompts with no signal"}  # not logged: not drawn
    assert "gave no reward signal" not in method_markdown(st)
    assert sample_rows(st) == [["2", "p", "a", "0.40 (pig_latin 0.40)"]]

    # What is left to learn from: TRL's entropy and frac_reward_zero_std, drawn on the third row as logged
    s.add([{"type": "metrics", "t": 4, "step": 3, "mode": "train",
            "values": {"reward": 0.45, "reward_std": 0.05, "entropy": 0.12, "frac_reward_zero_std": 0.5}}])
    st = summarize("r", s, alive=True)
    figure = reward_figure(st)
    traces = {t.name: t for t in figure.data}
    # The first row's title starts below the top 60 px, where the gr.Plot's label sits (it covered the title).
    assert figure.layout.margin.t >= 60 and figure.layout.annotations[0].yanchor == "bottom"
    entropy, no_signal = traces["samples' entropy (nats)"], traces["prompts with no signal"]
    assert list(entropy.x) == [3] and list(entropy.y) == [0.12] and entropy.yaxis == "y4"
    assert list(no_signal.y) == [0.5] and no_signal.yaxis == "y5"  # the third row, right axis
    assert "step 3: reward 0.450 ± 0.050 · 50 % of the step's prompts gave no reward signal" in method_markdown(st)
