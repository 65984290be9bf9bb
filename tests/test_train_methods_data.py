"""DPO | GRPO without training: prompt-only GRPO data, the GRPO preview's checks of the rewards, DPO's loss types
and length caps against TRL's own fields, the exported scripts' rows against the worker's, and the memory estimate
per method."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from playground.data.loading import RawData, load_raw
from playground.data.sources import DataSource
from playground.train.config import BaseModelRef, TrainJobConfig, TrainSettings
from playground.train.methods import MethodSettings

USER = [{"role": "user", "content": "Translate to Pig Latin: the cat"}]


class WordTokenizer:
    """A tokenizer stand-in: one token a word, no chat template."""

    chat_template = None
    eos_token = "</s>"

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": text.split()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def grpo_job(path: Path, **tuning) -> TrainJobConfig:
    return TrainJobConfig(data=DataSource(kind="file", path=str(path), eval_fraction=0.0),
                          train=TrainSettings(batch_size=4), base=BaseModelRef(name="m", source="org/model"),
                          tuning=MethodSettings(method="grpo", num_generations=2, **tuning))


# ---------------------------------------------------------------- GRPO: prompt-only rows

@pytest.mark.parametrize("rows, chat, expected", [
    ([{"prompt": "the cat"}, {"prompt": "a dog"}], True, [{"role": "user", "content": "the cat"}]),
    ([{"prompt": "the cat"}, {"prompt": "a dog"}], False, "the cat"),
    ([{"prompt": USER}, {"prompt": USER}], True, USER),  # TRL's conversational prompt-only rows
    ([{"messages": USER}, {"messages": USER}], True, USER),  # chats of user turns only
], ids=["plain", "plain-no-template", "conversational", "user-turns-only"])
def test_grpo_accepts_prompt_only_rows(tmp_path, rows, chat, expected):
    from playground.data.prompts import prepare_prompts
    from playground.train.export import export_script

    path = write_jsonl(tmp_path / "prompts.jsonl", rows)
    data = prepare_prompts(DataSource(kind="file", path=str(path), eval_fraction=0.0), has_chat_template=chat)
    assert data.rows == 2 and data.train.column_names == ["prompt"] and data.train[0]["prompt"] == expected
    view = prompt_preview(grpo_job(path, reward_length=1.0))
    assert view.rows[0][2] == "(none in the data)" and "no answers in the data" in view.summary
    code = export_script(grpo_job(path)).code  # the exported script takes the same rows
    assert "def to_training_row(row, chat):" in code and "GRPOTrainer(" in code


def test_grpo_prompt_rows_keep_refusing_what_has_no_prompt(tmp_path):
    from playground.data.prompts import prepare_prompts

    text = write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}, {"text": "b"}])
    with pytest.raises(ValueError, match="plain text rows; GRPO needs prompts"):
        prepare_prompts(DataSource(kind="file", path=str(text)))
    empty = write_jsonl(tmp_path / "e.jsonl", [{"prompt": "a"}, {"prompt": " "}])
    with pytest.raises(ValueError, match="Row 2: the prompt is empty."):
        prepare_prompts(DataSource(kind="file", path=str(empty)))
    answer_only = write_jsonl(tmp_path / "a.jsonl", [{"messages": [{"role": "assistant", "content": "hi"}]}] * 2)
    with pytest.raises(ValueError, match="Row 1: the prompt is empty."):
        prepare_prompts(DataSource(kind="file", path=str(answer_only)))


# ---------------------------------------------------------------- GRPO: the rewards are checked before scoring

def prompt_preview(cfg: TrainJobConfig):
    from playground.train.method_views import prompts_view

    return prompts_view(cfg, WordTokenizer(), load_raw(cfg.data))


@pytest.mark.parametrize("tuning, sentence", [
    ({"reward_regex": 1.0, "regex": "(unclosed"}, "Pattern (regular expression): '(unclosed' is not a valid"),
    ({"reward_regex": 1.0, "regex": "*"}, "Pattern (regular expression): '*' is not a valid"),
    ({"reward_pig_latin": 0.0}, "GRPO needs at least one reward with a weight above 0."),
    ({"reward_words": 1.0}, "The word reward is on but no required or banned words are given."),
])
def test_grpo_preview_names_a_bad_reward_setting(tmp_path, tuning, sentence):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": "the cat", "completion": "ethay atcay"}] * 2)
    with pytest.raises(ValueError) as err:
        prompt_preview(grpo_job(path, **tuning))
    assert sentence in str(err.value)


def test_a_bad_pattern_is_a_value_error_wherever_it_is_used(tmp_path):
    from playground.train.export import export_script
    from playground.train.rewards import build_rewards

    path = write_jsonl(tmp_path / "qa.jsonl", [{"prompt": "the cat", "completion": "ethay atcay"}] * 2)
    cfg = grpo_job(path, reward_regex=1.0, regex="a)")
    with pytest.raises(ValueError, match=r"Pattern \(regular expression\)"):
        build_rewards(cfg.tuning)  # the worker's reward functions
    with pytest.raises(ValueError, match=r"Pattern \(regular expression\)"):
        export_script(cfg)
    good = grpo_job(path, reward_regex=1.0, regex="ay$")
    view = prompt_preview(good)
    assert view.rows[0][2:] == ["ethay atcay", "2.00"]  # Pig Latin 1 + pattern 1


class ChatWordTokenizer(WordTokenizer):
    """The stand-in with a chat template: two tokens of turn markup around each message, one opening the answer."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = False):
        text = " ".join(f"<{m['role']}> {m['content']} </s>" for m in messages)
        return text + (" <assistant>" if add_generation_prompt else "")


@pytest.mark.parametrize("use_chat_template, tokenizer, lengths", [
    (True, ChatWordTokenizer(), [13, 23, 33, 43]),  # the run wraps in chat: 3 tokens of template each
    (False, ChatWordTokenizer(), [10, 20, 30, 40]),  # plain text prompts, as TRL tokenizes them
    (True, WordTokenizer(), [10, 20, 30, 40]),  # no chat template: no wrapping
], ids=["chat", "no-wrap", "no-template"])
def test_grpo_preview_counts_prompts_as_the_model_sees_them_and_caps_nothing(tmp_path, use_chat_template, tokenizer,
                                                                           lengths):
    """TRL 1.16's GRPO cuts no prompt (max_completion_length caps the sampled answers): no cap line, nothing
    "truncated", and each prompt counted after the chat template when the run wraps prompts in chat."""
    from playground.train.method_views import prompts_view

    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": " ".join(["word"] * n)} for n in (10, 20, 30, 40)])
    cfg = grpo_job(path, max_completion_length=16)
    cfg.data.use_chat_template = use_chat_template
    fig = prompts_view(cfg, tokenizer, load_raw(cfg.data)).lengths_figure
    assert sorted(fig.data[0].x) == lengths and fig.layout.xaxis.title.text == "prompt tokens"
    assert not fig.layout.shapes and not any("truncated" in a.text for a in fig.layout.annotations)


def test_an_adapter_records_only_the_settings_its_method_used():
    """DPO and GRPO take no packing, completion-only loss or sequence length (dpo.SHARED_KEYS); GRPO does not
    evaluate while training. playground.json leaves them out; the form hides them (test_train_panel.py)."""
    from playground.train.dpo import grpo_kwargs, shared_kwargs

    def flat(method: str) -> dict:
        return TrainJobConfig(tuning=MethodSettings(method=method)).flat_settings()

    sft_only = {"packing", "completion_only_loss", "max_seq_length"}
    assert sft_only | {"eval_steps"} <= set(flat("sft")) and "max_prompt_length" not in flat("sft")
    assert not sft_only & set(flat("dpo")) and {"eval_steps", "max_prompt_length", "beta"} <= set(flat("dpo"))
    assert not (sft_only | {"eval_steps", "max_prompt_length"}) & set(flat("grpo"))
    assert {"save_steps", "use_chat_template", "eval_fraction", "max_completion_length"} <= set(flat("grpo"))
    # ... as the trainers' configs have them
    assert not {"packing", "completion_only_loss", "max_length"} & set(shared_kwargs(TrainJobConfig()))
    assert grpo_kwargs(TrainJobConfig(), [1.0])["eval_strategy"] == "no"


# ---------------------------------------------------------------- DPO: losses and length caps as TRL has them

def test_dpo_losses_get_the_label_smoothing_trl_requires():
    from playground.train.dpo import dpo_kwargs

    cfg = dataclasses.replace(TrainJobConfig(), tuning=MethodSettings(method="dpo", loss_type="exo_pair"))
    assert dpo_kwargs(cfg)["label_smoothing"] == 1e-3  # TRL's DPOTrainer refuses exo_pair with 0
    cfg.tuning.loss_type = "robust"
    assert 0 < dpo_kwargs(cfg)["label_smoothing"] < 0.5  # 0 would make it plain sigmoid DPO
    cfg.tuning.loss_type = "sigmoid"
    assert "label_smoothing" not in dpo_kwargs(cfg)


def test_dpo_length_help_says_what_trl_enforces(tmp_path):
    from trl import DPOConfig

    from playground.data.preference import preference_preview
    from playground.train.config import SETTINGS
    from playground.train.dpo import dpo_kwargs

    trl_fields = {f.name for f in dataclasses.fields(DPOConfig)}
    assert "max_length" in trl_fields and not {"max_prompt_length", "max_completion_length"} & trl_fields
    cfg = dataclasses.replace(TrainJobConfig(), tuning=MethodSettings(method="dpo", max_prompt_length=8,
                                                                        max_completion_length=4))
    assert dpo_kwargs(cfg)["max_length"] == 12  # the one cap: prompt + answer
    prompt_help, answer_help = (SETTINGS[k].meta["help"] for k in ("max_prompt_length", "max_completion_length"))
    assert "caps prompt + answer" in prompt_help and "Prompts are not cut on their own" in prompt_help
    assert "caps prompt + answer" in answer_help and "kept" not in answer_help
    # a 10-token prompt with a 1-token answer fits the 12-token cap: no warning about a long prompt
    # answers open with a space, as plain-text DPO data does: DPO tokenizes prompt + answer + EOS as one text
    long_prompt = {"prompt": " ".join(["word"] * 10), "chosen": " yes", "rejected": " no"}
    path = write_jsonl(tmp_path / "pairs.jsonl", [long_prompt] * 2)
    summary = preference_preview(DataSource(kind="file", path=str(path), eval_fraction=0.0), WordTokenizer(),
                                 8, 4)["summary"]
    assert "⚠️" not in summary
    over = {**long_prompt, "chosen": " a b c"}  # 10 + 3 > 12: cut at the end
    path = write_jsonl(tmp_path / "pairs2.jsonl", [over] * 2)
    summary = preference_preview(DataSource(kind="file", path=str(path), eval_fraction=0.0), WordTokenizer(),
                                 8, 4)["summary"]
    assert "2 pair(s) over 12 tokens (prompt + longer answer) are cut at the end" in summary


# ---------------------------------------------------------------- the exported scripts: the worker's rows

def script_namespace(code: str) -> dict:
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "exported.py", "exec"), namespace)  # defines the functions; main() is not run
    return namespace


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
@pytest.mark.parametrize("has_template", [True, False])
def test_exported_rows_are_the_workers_with_and_without_a_chat_template(tmp_path, method, has_template):
    from playground.data.loading import format_rows
    from playground.data.preference import format_preference
    from playground.data.prompts import format_prompts, prompt_row
    from playground.train.export import export_script

    rows = ([{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(2)] if method == "dpo"
            else [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(2)])
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    cfg = dataclasses.replace(grpo_job(path), tuning=MethodSettings(method=method, num_generations=2))
    raw = RawData(load_raw(cfg.data).dataset, "rows.jsonl", "")
    if method == "dpo":
        worker = format_preference(raw, cfg.data, has_template)[0].to_list()
    elif method == "grpo":
        worker = [prompt_row(r) for r in format_prompts(raw, cfg.data, has_template)[0]]
    else:
        worker = format_rows(raw, cfg.data, has_template)[0].to_list()
    ns = script_namespace(export_script(cfg).code)
    chat = ns["wraps_in_chat"](ns["USE_CHAT_TEMPLATE"], has_template)  # the script's main() decides it so
    assert [ns["to_training_row"](r, chat) for r in rows] == worker
    assert isinstance(worker[0]["prompt"], list) == has_template


@pytest.mark.parametrize("method, start", [("dpo", ""), ("sft", "my-start")], ids=["dpo", "continued-sft"])
def test_exported_comments_are_the_methods_own(method, start):
    from playground.train.export import export_script

    data = DataSource(recipe="sign-off") if method == "dpo" else DataSource(recipe="pig-latin")
    cfg = TrainJobConfig(data=data, base=BaseModelRef(name="m", source="org/model"),
                         tuning=MethodSettings(method=method, start_adapter=start))
    code = export_script(cfg).code
    assert "KL penalty" not in code and "prompts x num_generations" not in code  # GRPO's comments
    lines = {line.strip().split("=")[0]: line for line in code.splitlines() if "=" in line}
    assert lines["per_device_train_batch_size"].strip() == "per_device_train_batch_size=4,"
    if method == "dpo":
        assert "how far the model may move from the reference" in lines["beta"]
        assert "prompt + answer tokens" in lines["max_length"]
    else:
        assert lines["max_length"].strip() == "max_length=256,"  # SFT's own cap, not DPO's comment


# ---------------------------------------------------------------- the memory estimate per method

def test_memory_estimate_uses_each_methods_lengths_and_rows():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from playground.train.sizing import memory_estimate

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))

    def estimate(method: str, batch_size: int = 4, max_seq_length: int = 1024) -> float:
        cfg = TrainJobConfig(train=TrainSettings(batch_size=batch_size, max_seq_length=max_seq_length),
                             tuning=MethodSettings(method=method, max_prompt_length=100, max_completion_length=28,
                                                   num_generations=2))
        return memory_estimate(model, cfg, "cpu").total

    # DPO: chosen and rejected rows of prompt + answer (100 + 28), whatever SFT's hidden max sequence length
    assert estimate("dpo") == estimate("dpo", max_seq_length=64) == estimate("sft", batch_size=8, max_seq_length=128)
    # GRPO: the batch already counts answers, each prompt + sampled answer
    assert estimate("grpo") == estimate("grpo", max_seq_length=64) == estimate("sft", max_seq_length=128)
    assert estimate("sft", max_seq_length=64) < estimate("sft", max_seq_length=128)


def test_reward_evaluation_reads_prompt_only_files_as_grpo_trains_on_them(tmp_path):
    """The held-out reward needs prompts only (the rules score the models' answers): a GRPO user's prompt-only
    file is evaluated, and a recipe's split gives the same prompts as the answer-bearing reader."""
    from playground.compare.evaluation import load_examples, load_prompts

    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text("\n".join(json.dumps({"prompt": f"Translate to Pig Latin: cat {i}"}) for i in range(3)))
    name, examples = load_prompts(str(held_out), True, 0)
    assert name == "held_out.jsonl" and [e.reference for e in examples] == ["", "", ""]
    assert examples[1].prompt == [{"role": "user", "content": "Translate to Pig Latin: cat 1"}]
    with pytest.raises(ValueError, match="prompt"):
        load_examples(str(held_out), True, 0)  # the word-accuracy evaluation needs the answers
    _, recipe = load_prompts("pig-latin", True, 5)
    _, with_answers, _ = load_examples("pig-latin", True, 5)
    assert [e.prompt for e in recipe] == [e.prompt for e in with_answers]
    assert [e.reference for e in recipe] == [e.reference for e in with_answers]
