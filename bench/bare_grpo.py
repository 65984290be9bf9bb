"""Baseline for bench/grpo.py: a bare TRL GRPOTrainer script (no playground code in the training loop; the Pig
Latin rule itself is imported from playground.data.pig_latin, plain Python).

`python bench/bare_grpo.py MODEL_DIR PIG_LATIN_JSONL OUT_JSON --steps N --batch B --generations G --lr LR --r R
 --max-completion L --beta KL`
Writes {"train_s", "steps", "answers_s"} measured over the training loop only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

from _clock import Clock, write_rate  # the loop-only clock every bare baseline shares

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from playground.data.pig_latin import to_pig_latin, word_accuracy  # noqa: E402

PREFIX = re.compile(r"^\s*translate\s+to\s+pig\s+latin\s*:\s*", re.IGNORECASE)


def pig_latin(prompts, completions, **kwargs):
    return [word_accuracy(c[-1]["content"].strip().lower(), to_pig_latin(PREFIX.sub("", p[-1]["content"])))
            for p, c in zip(prompts, completions)]


def main() -> None:
    p = argparse.ArgumentParser()
    for name, kind, default in (("--steps", int, 3), ("--batch", int, 8), ("--generations", int, 4),
                                ("--lr", float, 2e-4), ("--r", int, 16), ("--alpha", float, 32),
                                ("--max-completion", int, 48), ("--beta", float, 0.02), ("--temperature", float, 1.0)):
        p.add_argument(name, type=kind, default=default)
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--output-dir", default="/tmp/bare-grpo")
    a = p.parse_args()
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16 if bf16 else torch.float32)
    ds = load_dataset("json", data_files=a.data, split="train")
    ds = ds.map(lambda r: {"prompt": r["messages"][:-1]}, remove_columns=ds.column_names)
    clock = Clock()
    args = GRPOConfig(output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=a.batch,
                      num_generations=a.generations, max_completion_length=a.max_completion, beta=a.beta,
                      temperature=a.temperature, learning_rate=a.lr, logging_steps=1, save_strategy="no",
                      report_to="none", bf16=bf16, fp16=cuda and not bf16, activation_checkpointing=False,
                      disable_tqdm=True, seed=42, data_seed=42, use_cpu=not cuda, dataloader_pin_memory=cuda)
    trainer = GRPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, reward_funcs=[pig_latin],
                          callbacks=[clock], peft_config=LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0,
                                                                    target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.train()
    write_rate(clock, a.out, a.batch, "answers_s")


if __name__ == "__main__":
    main()
