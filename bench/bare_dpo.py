"""Baseline for bench/dpo.py: a bare TRL DPOTrainer script, no playground code in the training path.

`python bench/bare_dpo.py MODEL_DIR PAIRS_JSONL OUT_JSON --steps N --batch B --lr LR --r R --beta BETA
 --max-length L`
Writes {"train_s", "pairs_s", "steps"} measured over the training loop only (first step start to last log).
"""

from __future__ import annotations

import argparse

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

from _clock import Clock, write_rate  # the loop-only clock every bare baseline shares


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--sft-weight", type=float, default=0.0, help="> 0: TRL's sigmoid + sft losses (RPO)")
    p.add_argument("--max-length", type=int, default=112)
    p.add_argument("--output-dir", default="/tmp/bare-dpo")
    a = p.parse_args()

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    dtype = torch.bfloat16 if bf16 else torch.float16 if cuda else torch.float32
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    ds = load_dataset("json", data_files=a.data, split="train")  # conversational prompt / chosen / rejected
    clock = Clock()
    losses = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, a.sft_weight]) if a.sft_weight > 0 else {}
    args = DPOConfig(output_dir=a.output_dir, max_steps=a.steps, per_device_train_batch_size=a.batch, **losses,
                     learning_rate=a.lr, beta=a.beta, max_length=a.max_length, logging_steps=1, save_strategy="no",
                     report_to="none", bf16=bf16, fp16=cuda and not bf16, activation_checkpointing=False,
                     disable_tqdm=True, seed=42, data_seed=42, warmup_steps=0.1, lr_scheduler_type="cosine",
                     use_cpu=not cuda, dataloader_pin_memory=cuda)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                         peft_config=LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0,
                                                target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.train()
    write_rate(clock, a.out, a.batch, "pairs_s")


if __name__ == "__main__":
    main()
