"""Baseline for bench/train.py: a bare TRL SFTTrainer script, no playground code in the training path.

`python bench/bare_sft.py MODEL_DIR DATA_JSONL OUT_JSON --steps N --batch B --max-length L --lr LR --r R
[--quantization 4bit] [--optim paged_adamw_8bit]`
Writes {"tokens", "train_s", "tok_s", "peak_rss_mb", "peak_cuda_mb"} measured over the training loop only.
"""

from __future__ import annotations

import json
import resource

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from _clock import Clock, bare_parser, lora, loop_settings, model_dtype  # what every bare baseline shares


def main() -> None:
    p = bare_parser("sft", steps=20, batch=4, max_length=128, lr=1e-3, optim="adamw_torch")
    p.add_argument("--quantization", choices=["none", "4bit"], default="none", help="4bit = QLoRA (NF4)")
    a = p.parse_args()

    # Precision from the hardware, as any sensible script does: bf16 on a GPU that has it, fp32 on a CPU or --fp32.
    cuda = torch.cuda.is_available()
    dtype = model_dtype(a)
    tok = AutoTokenizer.from_pretrained(a.model)
    if a.quantization == "4bit":
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, quantization_config=quant,
                                                     device_map={"": "cuda" if cuda else "cpu"})
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    ds = load_dataset("json", data_files=a.data, split="train")
    # Chat rows -> conversational prompt/completion, so TRL puts the loss on the answer only (as the app does).
    ds = ds.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]},
                remove_columns=ds.column_names)
    clock = Clock()
    args = SFTConfig(**loop_settings(a), max_length=a.max_length, optim=a.optim, warmup_steps=0.05,
                     lr_scheduler_type="cosine")
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                         peft_config=lora(a, dropout=0.05))
    trainer.train()
    train_s = clock.last - clock.begin
    result = {"tokens": clock.tokens, "train_s": round(train_s, 2), "tok_s": clock.tokens / train_s,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None}
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
