"""Baseline for bench/train.py: a bare TRL SFTTrainer script, no playground code in the training path.

`python bench/bare_sft.py MODEL_DIR DATA_JSONL OUT_JSON --steps N --batch B --max-length L --lr LR --r R`
Writes {"tokens", "train_s", "tok_s", "peak_rss_mb"} measured over the training loop only.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import SFTConfig, SFTTrainer


class Clock(TrainerCallback):
    def __init__(self) -> None:
        self.begin, self.last, self.tokens = 0.0, 0.0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.begin = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last, self.tokens = time.time(), float(logs.get("num_tokens") or 0)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--output-dir", default="/tmp/bare-sft")
    a = p.parse_args()

    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    ds = load_dataset("json", data_files=a.data, split="train")
    # Chat rows -> conversational prompt/completion, so TRL puts the loss on the answer only (as the app does).
    ds = ds.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]},
                remove_columns=ds.column_names)
    clock = Clock()
    args = SFTConfig(output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=a.batch,
                     learning_rate=a.lr, max_length=a.max_length, logging_steps=1, save_strategy="no",
                     report_to="none", bf16=False, fp16=False, activation_checkpointing=False,
                     disable_tqdm=True, seed=42, data_seed=42, warmup_steps=0.05, lr_scheduler_type="cosine",
                     use_cpu=not torch.cuda.is_available(), dataloader_pin_memory=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                         peft_config=LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.05,
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.train()
    train_s = clock.last - clock.begin
    result = {"tokens": clock.tokens, "train_s": round(train_s, 2), "tok_s": clock.tokens / train_s,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
