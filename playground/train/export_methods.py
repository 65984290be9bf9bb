"""Export a DPO or GRPO run (or any run that continues an adapter) as a standalone, readable script
(transformers + peft + trl + datasets, no playground import). The keyword arguments are the worker's own
mapping (playground.train.dpo: dpo_kwargs / grpo_kwargs; hf_args: lora_kwargs / sft_kwargs) and GRPO's reward
rules are copied into the script from playground.train.rewards, so the script cannot drift from the app.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from typing import Any

from playground.data import messages, pig_latin, reward_rules
from playground.data.loading import resolve_format
from playground.data.preference import resolve_preference_columns
from playground.train.config import TrainJobConfig
from playground.train.dpo import DPO_COMMENTS, GRPO_COMMENTS, dpo_kwargs, grpo_kwargs
from playground.train.export import (
    CHAT_MAP,
    ExportedScript,
    _data_loading,
    _main_head,
    _prompt_code,
    _row_function,
    base_model_code,
    chat_rule,
    multi_process_launch,
)
from playground.train.hf_args import SFT_COMMENTS, lora_kwargs, sft_kwargs

TRAINERS = {"sft": ("SFTConfig", "SFTTrainer"), "dpo": ("DPOConfig", "DPOTrainer"),
            "grpo": ("GRPOConfig", "GRPOTrainer")}
# The comments next to each method's keywords (a GRPO comment on a DPO keyword of the same name would be wrong).
COMMENTS = {"sft": SFT_COMMENTS, "dpo": {**SFT_COMMENTS, **DPO_COMMENTS}, "grpo": {**SFT_COMMENTS, **GRPO_COMMENTS}}


def _keywords(kwargs: dict[str, Any], method: str, indent: str = "        ") -> str:
    comments = COMMENTS[method]
    return "".join(f"{indent}{k}={v!r},{f'  # {comments[k]}' if k in comments else ''}\n" for k, v in kwargs.items())


def _dpo_rows(config: TrainJobConfig, columns: dict[str, str]) -> str:
    """The body of to_training_row for preference pairs (as playground.data.preference.to_preference_row maps
    them: a text prompt of conversation answers is a user turn; text pairs are wrapped when `chat`)."""
    body = (f"    chosen, rejected = row[{columns['chosen']!r}], row[{columns['rejected']!r}]\n")
    if "prompt" not in columns:  # implicit prompt: TRL takes the shared leading turns of the conversations
        return body + '    return {"chosen": chosen, "rejected": rejected}\n'
    body += f"    prompt = row[{columns['prompt']!r}]\n"
    body += ('    if isinstance(prompt, str) and (chat or isinstance(chosen, list)):\n'
             '        prompt = [{"role": "user", "content": prompt}]\n'
             '    if chat and isinstance(chosen, str):\n'
             '        chosen = [{"role": "assistant", "content": chosen}]\n'
             '        rejected = [{"role": "assistant", "content": rejected}]\n')
    return body + '    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}\n'


def _grpo_rows(columns: dict[str, str], fmt: str) -> str:
    """The body of to_training_row for GRPO: the prompt only, answers optional (as playground.data.prompts maps
    rows); a conversation prompt is kept as it is."""
    if fmt == "messages":
        return (f"    messages = row[{columns['messages']!r}]\n"
                "    # every turn before the final assistant answer; GRPO samples its own answers\n"
                '    return {"prompt": messages[:-1] if messages[-1]["role"] == "assistant" else messages}\n')
    return (_prompt_code(columns, fmt, answer=False) + '    if chat and isinstance(prompt, str):\n'
            '        prompt = [{"role": "user", "content": prompt}]\n    return {"prompt": prompt}\n')


def _reward_code(config: TrainJobConfig) -> tuple[str, list[str], list[float]]:
    """The reward rules' source, and the names and weights of the reward functions switched on (the worker's
    rules, in its order: train.rewards builds them with the same rules_from_settings)."""
    m = config.tuning
    m.validate_rewards()  # a bad pattern is a sentence naming its field, not a script that fails
    parts = ["import re\nfrom typing import Any\n\nimport regex\n",
             f"REGEX_TIMEOUT_S = {reward_rules.REGEX_TIMEOUT_S!r}",
             f"VOWELS = frozenset({''.join(sorted(pig_latin.VOWELS))!r})",
             f"_TOKEN = re.compile({pig_latin._TOKEN.pattern!r})",
             f"PIG_LATIN_PREFIX = re.compile({reward_rules.PIG_LATIN_PREFIX.pattern!r}, re.IGNORECASE)",
             f"WORD = re.compile({reward_rules.WORD.pattern!r})\n"]
    for fn in (pig_latin._is_word, pig_latin._translate_token, pig_latin.to_pig_latin, pig_latin.rule_accuracy,
               messages.text_of, reward_rules.pig_latin_reference, reward_rules.score_pig_latin,
               reward_rules.score_length, reward_rules.score_regex, reward_rules.score_words):
        parts.append(inspect.getsource(fn))
    calls = {"pig_latin": "score_pig_latin(text_of(p), text_of(c))",  # each rule's score, as the script calls it
             "length": f"score_length(text_of(c), {m.length_target!r})",
             "pattern": f"score_regex(text_of(c), {m.regex!r})",
             "words": f"score_words(text_of(c), {reward_rules.word_list(m.must_include)!r}, "
                      f"{reward_rules.word_list(m.must_exclude)!r})"}
    rules = reward_rules.rules_from_settings(dataclasses.asdict(m))
    names = [name for name, _, _ in rules]
    for name in names:
        parts.append(f"def {name}(prompts, completions, **kwargs):\n"
                     f"    return [{calls[name]} for p, c in zip(prompts, completions)]\n")
    return "\n\n".join(parts), names, [weight for _, weight, _ in rules]


def export_method_script(config: TrainJobConfig, run_id: str = "", output_dir: str | None = None,
                         num_gpus: int = 2) -> ExportedScript:
    t, m, d = config.train, config.tuning, config.data
    method = m.method
    load_code, source_columns = _data_loading(config)
    config_cls, trainer_cls = TRAINERS[method]
    rewards_code, reward_names = "", []
    if method == "dpo":
        rows = _dpo_rows(config, resolve_preference_columns(source_columns, d))
        kwargs, fmt = dpo_kwargs(config), "preference"
    else:
        fmt, columns = resolve_format(source_columns, d, prompts_only=method == "grpo")
        if method == "grpo":
            rows = _grpo_rows(columns, fmt)
            rewards_code, reward_names, weights = _reward_code(config)
            kwargs = grpo_kwargs(config, weights)
        else:
            rows, kwargs = _row_function(config, columns, fmt), sft_kwargs(config, fmt)
    max_steps = kwargs.pop("max_steps")
    eval_split = d.eval_fraction > 0 and method != "grpo"
    filename = f"train_{config.adapter_name}.py"
    out = output_dir or f"./{config.adapter_name}"
    start = m.start_adapter.strip()
    start_dir = f"{config.data_dir or '.'}/adapters/{start}" if start else ""
    reference = ("a frozen copy of the starting adapter (TRL adds it as the 'ref' adapter)" if start
                 else "the base model with the adapter switched off")
    split = (f"    split = dataset.train_test_split(test_size={d.eval_fraction!r}, seed={t.seed})\n"
             '    train_data, eval_data = split["train"], split["test"]\n') if eval_split else \
        (f"    train_data = dataset.train_test_split(test_size={d.eval_fraction!r}, seed={t.seed})[\"train\"]\n"
         "    eval_data = None  # held out, not trained on\n" if d.eval_fraction > 0 else
         "    train_data, eval_data = dataset, None\n")
    model_code = ('    model = PeftModel.from_pretrained(model, START_ADAPTER, is_trainable=True)  # train it on\n'
                  '    peft_config = None\n') if start else \
        f"    peft_config = LoraConfig(\n{_keywords(lora_kwargs(config.lora), method)}    )\n"
    trainer_args = ("        reward_funcs=[" + ", ".join(reward_names) + "],\n" if method == "grpo" else "") + \
        ("" if method == "grpo" else "        eval_dataset=eval_data,\n")
    today = dt.date.today().isoformat()
    quant = t.quantization != "none"  # QLoRA: the script loads the base in 4/8 bit as the worker did
    launched = multi_process_launch(config, filename)  # (command, config file name, its text) or None
    command = launched[0] if launched else f"accelerate launch --num_processes {num_gpus} {filename}"
    code = f'''#!/usr/bin/env python
"""{method.upper()} LoRA training exported from LLM Playground{f" (run {run_id})" if run_id else ""}, {today}.
Reference model: {reference}.

One GPU or CPU:   python {filename}
Several GPUs:     {command}{f"  ({launched[1]} next to this script)" if launched else ""}
Needs: pip install torch transformers peft trl datasets accelerate{" bitsandbytes" if quant else ""}
"""

import argparse

import torch
{"from accelerate import PartialState" + chr(10) if quant else ""}from datasets import load_dataset
from peft import LoraConfig, PeftModel{", prepare_model_for_kbit_training" if quant else ""}
from transformers import AutoModelForCausalLM, AutoTokenizer{", BitsAndBytesConfig" if quant else ""}
from trl import {config_cls}, {trainer_cls}

BASE_MODEL = {config.base.load_source!r}  # the app's base model: {config.base.name} ({config.base.source})
START_ADAPTER = {start_dir!r}  # '' = train a new adapter
{chat_rule(config)}{chr(10) * 2 + rewards_code + chr(10) if rewards_code else ""}
def to_training_row(row, chat):
    """One source row -> one TRL row ({fmt.replace("_", "/")})."""
{rows}

{_main_head(out, max_steps, config)}{base_model_code(t.quantization, t.gradient_checkpointing)}{model_code}
{load_code}{CHAT_MAP}{split}
    args = {config_cls}(
        output_dir=cli.output_dir + "/checkpoints",
        max_steps=cli.max_steps,
{_keywords(kwargs, method)}        use_cpu=not torch.cuda.is_available(),
        bf16=use_bf16,  # set explicitly: TRL defaults to bf16=True, ~10x slower on a CPU
        fp16=use_fp16,
    )
    trainer = {trainer_cls}(
        model=model,
        args=args,
        train_dataset=train_data,
{trainer_args}        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model(cli.output_dir)  # adapter_config.json + adapter_model.safetensors


if __name__ == "__main__":
    main()
'''
    return ExportedScript(filename=filename, code=code, command=command,
                          config_filename=launched[1] if launched else "",
                          accelerate_config=launched[2] if launched else "")
