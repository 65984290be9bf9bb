"""Adapters + Compare benchmark on the bundled model.

* swap_ms_p50: AdapterManager.activate between two loaded adapters (goal < 50 ms on CPU); baseline: a bare
  PEFT `set_adapter` on the same model.
* compare_tok_s: a whole Compare turn (base + tuned, streamed, plus the "what changed" pass) in generated
  tokens per second; baseline: two bare `generate` calls (adapter disabled / enabled) with the same settings
  and seed (goal: ratio >= 0.9). compare_cpu_ratio is the same ratio per CPU-second of this process, which
  stays meaningful when other programs compete for the cores (load_avg_1m says how busy the machine was).
* diff_pass_ms: the "what changed" computation for a 100-token answer; baseline: one bare forward pass.

Run: `.venv/bin/python bench/compare.py` (data dir .data/bench; the converted model is linked from
.data/test-cache/models when present). Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import time

from _common import ROOT, emit, link_converted_models, median  # noqa: E402  (sets up sys.path and offline mode)

DATA = ROOT / ".data" / "bench"
NAMES = ("bench-a", "bench-b")


def make_adapters(lm, library) -> None:
    """Two random non-identity LoRAs on a separate copy of the base (the live model is not touched)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for seed, name in enumerate(NAMES):
        if library.folder(name).exists():
            library.delete(name)
        copy = AutoModelForCausalLM.from_pretrained(lm.checkpoint_dir, dtype=lm.dtype)
        torch.manual_seed(seed)
        peft = get_peft_model(copy, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                               init_lora_weights=False))
        with library.create(name) as tmp:
            peft.save_pretrained(tmp)
            (tmp / "playground.json").write_text(json.dumps({
                "name": name, "kind": "trained", "base_model": lm.name, "base_fingerprint": lm.fingerprint,
                "dataset": None, "settings": {"r": 8}, "created_at": "2025-01-01T00:00:00+00:00"}))


def bare_two_generates(lm, prompt, kwargs, seed) -> tuple[float, float]:
    """Tokens/s of two plain generate() calls (adapter disabled, then enabled), run in a worker thread like
    the Compare turn is (on a busy CPU, torch speed differs between the main and other threads)."""
    import threading

    import torch

    out: list[float] = []

    def run() -> None:
        t, cpu = time.perf_counter(), time.process_time()
        n = 0
        with torch.inference_mode():
            with lm.model.disable_adapter():
                torch.manual_seed(seed)
                n += lm.model.generate(input_ids=prompt, **kwargs).shape[1] - prompt.shape[1]
            torch.manual_seed(seed)
            n += lm.model.generate(input_ids=prompt, **kwargs).shape[1] - prompt.shape[1]
        out.extend([n / (time.perf_counter() - t), n / (time.process_time() - cpu)])

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return out[0], out[1]


def main() -> None:
    import torch

    from playground.adapters.live import AdapterManager
    from playground.compare.chat import CompareRequest, CompareSettings, build_prompt_ids, run_compare
    from playground.compare.diff import what_changed
    from playground.decode.sampling import generate_kwargs
    from playground.model.store import LoadSettings, ModelStore

    link_converted_models(DATA)
    store = ModelStore(LoadSettings(data_dir=DATA, dtype="auto"))  # what the app runs (bf16 where native)
    lm = store.load()
    adapters = AdapterManager.for_data_dir(store, DATA)
    make_adapters(lm, adapters.library)

    # ---- swap between two loaded adapters
    for name in NAMES:
        adapters.activate(name)
    swaps = []
    for i in range(40):
        t = time.perf_counter()
        adapters.activate(NAMES[i % 2])
        swaps.append((time.perf_counter() - t) * 1000)
    keys = [adapters._loaded[n].key for n in NAMES]  # bare PEFT baseline on the same wrapper
    bare_swaps = []
    for i in range(40):
        t = time.perf_counter()
        lm.model.set_adapter(keys[i % 2], inference_mode=True)
        bare_swaps.append((time.perf_counter() - t) * 1000)
    adapters.activate(NAMES[0])

    # ---- a compare turn vs two bare generate() calls
    settings = CompareSettings.from_dict({"max_new_tokens": 100, "temperature": 0.7, "top_p": 0.95}, seed=7)
    request = CompareRequest("Write a short story about a lighthouse keeper.", settings)
    prompt = torch.tensor([build_prompt_ids(lm.tokenizer, "", (), request.message)])
    kwargs = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=settings.max_new_tokens,
                  pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings.sampling))
    run_compare(adapters, request)  # warm-up
    ours, bare, ours_cpu, bare_cpu = [], [], [], []
    for _ in range(3):  # interleaved, so a change in machine load hits both sides
        t, cpu = time.perf_counter(), time.process_time()
        result = run_compare(adapters, request)
        elapsed, cpu_s = time.perf_counter() - t, time.process_time() - cpu
        n_ours = len(result.columns["base"].token_ids) + len(result.columns["tuned"].token_ids)
        ours.append(n_ours / elapsed)
        ours_cpu.append(n_ours / cpu_s)
        wall, cpu_rate = bare_two_generates(lm, prompt, kwargs, settings.seed)
        bare.append(wall)
        bare_cpu.append(cpu_rate)

    # ---- the "what changed" pass for a 100-token answer
    ids = prompt[0].tolist()
    answer = torch.randint(100, 40000, (100,), generator=torch.Generator().manual_seed(0)).tolist()
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.tensor([ids + answer])).logits[0, len(ids) - 1:-1]
    diff_ms, bare_fwd_ms = [], []
    for _ in range(5):
        with store.use():
            t = time.perf_counter()
            what_changed(lm, ids, answer, logits, answer[:50])
            diff_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            with torch.inference_mode(), lm.model.disable_adapter():
                lm.model(input_ids=torch.tensor([ids + answer]))
            bare_fwd_ms.append((time.perf_counter() - t) * 1000)

    compare_tok_s, bare_tok_s = statistics.median(ours), statistics.median(bare)
    emit({
        "device": lm.device.type, "model": lm.name, "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "swap_ms_p50": median(swaps), "swap_bare_set_adapter_ms_p50": median(bare_swaps), "swap_goal_ms": 50,
        "compare_tok_s": round(compare_tok_s, 2), "bare_generate_tok_s": round(bare_tok_s, 2),
        "compare_ratio": round(compare_tok_s / bare_tok_s, 3), "compare_ratio_goal": 0.9,
        "compare_tokens_per_turn": n_ours,
        # Per CPU-second of this process: robust to other processes competing for the cores.
        "compare_cpu_ratio": round(statistics.median(ours_cpu) / statistics.median(bare_cpu), 3),
        "diff_pass_ms": median(diff_ms), "diff_bare_forward_ms": median(bare_fwd_ms), "diff_answer_tokens": len(answer),
    })


if __name__ == "__main__":
    main()
