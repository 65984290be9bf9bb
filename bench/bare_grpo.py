"""Baseline for bench/grpo.py: a bare TRL GRPOTrainer script (no playground code in the training loop; the Pig
Latin rule itself is imported from playground.data.pig_latin, plain Python).

`python bench/bare_grpo.py MODEL_DIR PIG_LATIN_JSONL OUT_JSON --steps N --batch B --generations G --lr LR --r R
 --max-completion L --beta KL`
Writes {"train_s", "steps", "answers_s"} measured over the training loop only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer

# what every bare baseline shares
from _clock import Clock, bare_parser, lora, loop_settings, model_dtype, write_rate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from playground.data.pig_latin import to_pig_latin, word_accuracy  # noqa: E402

PREFIX = re.compile(r"^\s*translate\s+to\s+pig\s+latin\s*:\s*", re.IGNORECASE)


def pig_latin(prompts, completions, **kwargs):
    return [word_accuracy(c[-1]["content"].strip().lower(), to_pig_latin(PREFIX.sub("", p[-1]["content"])))
            for p, c in zip(prompts, completions)]


def main() -> None:
    p = bare_parser("grpo", steps=3, batch=8, generations=4, lr=2e-4, max_completion=48, beta=0.02,
                    temperature=1.0)
    a = p.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=model_dtype(a))
    ds = load_dataset("json", data_files=a.data, split="train")
    ds = ds.map(lambda r: {"prompt": r["messages"][:-1]}, remove_columns=ds.column_names)
    clock = Clock()
    args = GRPOConfig(**loop_settings(a), num_generations=a.generations, max_completion_length=a.max_completion,
                      beta=a.beta, temperature=a.temperature)
    trainer = GRPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, reward_funcs=[pig_latin],
                          callbacks=[clock], peft_config=lora(a, dropout=0.0))
    trainer.train()
    write_rate(clock, a.out, a.batch, "answers_s")


if __name__ == "__main__":
    main()
