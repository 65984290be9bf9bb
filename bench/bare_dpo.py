"""Baseline for bench/dpo.py: a bare TRL DPOTrainer script, no playground code in the training path.

`python bench/bare_dpo.py MODEL_DIR PAIRS_JSONL OUT_JSON --steps N --batch B --lr LR --r R --beta BETA
 --max-length L`
Writes {"train_s", "pairs_s", "steps"} measured over the training loop only (first step start to last log).
"""

from __future__ import annotations

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

# what every bare baseline shares
from _clock import Clock, bare_parser, lora, loop_settings, model_dtype, write_rate


def main() -> None:
    p = bare_parser("dpo", steps=10, batch=8, lr=5e-4, beta=0.1, max_length=112)
    p.add_argument("--sft-weight", type=float, default=0.0, help="> 0: TRL's sigmoid + sft losses (RPO)")
    a = p.parse_args()

    dtype = model_dtype(a)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    ds = load_dataset("json", data_files=a.data, split="train")  # conversational prompt / chosen / rejected
    clock = Clock()
    losses = dict(loss_type=["sigmoid", "sft"], loss_weights=[1.0, a.sft_weight]) if a.sft_weight > 0 else {}
    args = DPOConfig(**loop_settings(a), **losses, beta=a.beta, max_length=a.max_length, warmup_steps=0.1,
                     lr_scheduler_type="cosine")
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                         peft_config=lora(a, dropout=0.0))
    trainer.train()
    write_rate(clock, a.out, a.batch, "pairs_s")


if __name__ == "__main__":
    main()
