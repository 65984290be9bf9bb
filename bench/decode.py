"""Decode tab benchmark on the bundled model (CPU). Last line: one JSON object.

Measures, server side:
  refilter_ms_p50      a slider change: re-filter cached logits and rebuild chart/table/text (goal < 30)
  forward_ms_p50       a new prompt: one forward pass
  dtype                the app's choice (--dtype auto: bf16 on a CPU with native bf16, else fp32)
  step_cached_ms_p50   one step with the session's KV cache at 200 tokens of context, in that dtype (goal <= 35)
  bare_fp32_step_cached_ms_p50  the same step on an fp32 copy of the model, alternated with it
  step_uncached_ms_p50 the same step as a fresh forward pass over all 201 tokens (ratio goal >= 3)
  stream_tok_s         'Generate N tokens' through the streamer, recorder and coloured-text rendering
  bare_generate_tok_s  plain model.generate() in the same dtype with the same settings and seed
  stream_vs_bare       median over the rounds of stream / bare (goal >= 0.95)
  app_generate_tok_s   = stream_tok_s: what the app's Generate gives in its dtype
  bare_fp32_generate_tok_s  plain generate() on the fp32 copy, the old default
  cpu_speedup          median over the rounds of app_generate / bare_fp32_generate (goal >= 2)
  parity_max_abs_diff  shown final probabilities vs softmax(generate(output_scores=True)) in the app's dtype
                       (goal < 1e-5)
Each round runs the stream, the bare generate() and the fp32 generate() back to back (--rounds, >= 5, of
--new-tokens, >= 64, tokens each); ratios are taken within a round, so a busy machine moves both sides.

Run: .venv/bin/python bench/decode.py [--data-dir DIR] [--repeats N] [--threads N] [--dtype D]
     [--no-pack] [--bf16-attention]   (the last two measure the other CPU candidates)
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT, TEST_CACHE, emit, median  # noqa: E402  (sets up sys.path and offline mode)

from playground.decode.sampling import SamplingSettings, analyze, generate_kwargs, next_logits  # noqa: E402
from playground.decode.session import DecodeService, StepState  # noqa: E402
from playground.decode.stream import GenerateRequest, stream_generate  # noqa: E402
from playground.decode.views import built_text_html, distribution_view  # noqa: E402
from playground.model.cpu_speed import app_threads, unpack_linear_weights  # noqa: E402
from playground.model.sources import DTYPE_CHOICES  # noqa: E402
from playground.model.store import LoadSettings, ModelStore  # noqa: E402

SETTINGS = SamplingSettings(temperature=0.8, top_k=50, top_p=0.95, min_p=0.02, repetition_penalty=1.1)
STORY = ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
         "who repaired every clock in the valley. Each morning he opened his shop, wound the tall clock by the "
         "door, and listened to the ticking of a hundred clocks around him. ")


def ms(samples: list[float]) -> float:
    return median(samples, scale=1000, digits=2)


def default_data_dir() -> Path:
    return TEST_CACHE if any((TEST_CACHE / "models").glob("*/config.json")) else ROOT / ".data" / "bench"


def bench_refilter(svc: DecodeService, state: StepState, repeats: int) -> float:
    distribution_view(svc, state, SETTINGS, 20)  # fills the logits cache
    calls, samples = svc.model_calls, []
    for i in range(repeats):
        settings = SamplingSettings(temperature=0.1 + (i % 19) * 0.1, top_k=50, top_p=0.9, min_p=0.01)
        t = time.perf_counter()
        distribution_view(svc, state, settings, 20)
        samples.append(time.perf_counter() - t)
    assert svc.model_calls == calls, "a slider change must not run the model"
    return ms(samples)


def bench_waterfall_refilter(svc: DecodeService, state: StepState, repeats: int) -> float:
    """A slider move with every sampler on (12 stages + the waterfall rows and chart): goal < 30 ms."""
    from dataclasses import replace

    from playground.decode.views import settings_from_values

    every = settings_from_values(svc, 0.8, 50, 0.95, 0.02, 1.1, 0.95, 3e-4, 1e-3, 0.9, 3, "plain=2, rain=-1",
                                 "Madrid, London")
    distribution_view(svc, state, every, 20)  # fills the logits cache
    calls, samples = svc.model_calls, []
    for i in range(repeats):
        settings = replace(every, temperature=0.15 + (i % 19) * 0.1)  # never 1.0: every stage stays on
        t = time.perf_counter()
        view = distribution_view(svc, state, settings, 20)
        samples.append(time.perf_counter() - t)
        assert len(view.stages) == 13, [r.name for r in view.stages]
    assert svc.model_calls == calls, "a slider change must not run the model"
    return ms(samples)


def bench_forward(svc: DecodeService, repeats: int) -> float:
    samples = []
    for i in range(repeats):
        ids = svc.encode(f"Question {i}: what is the capital of country number {i}? The answer is", False).ids
        t = time.perf_counter()
        svc.logits(ids)
        samples.append(time.perf_counter() - t)
    return ms(samples)


def bench_steps(store: ModelStore, svc: DecodeService, repeats: int,
                base: DecodeService | None = None) -> tuple[float, float, float | None]:
    """Cached step, the uncached step, and (alternated with them) the cached step on the fp32 copy."""
    lm = store.current
    ids = svc.encode(STORY * 6, False).ids[:200]
    for s in (svc, base) if base else (svc,):
        s.logits(ids, "bench")  # the session's KV cache now holds 200 tokens
    cached, uncached, fp32 = [], [], []
    for i in range(repeats):
        step = ids + (1000 + i,)  # a different next token each time: the cache is cropped back, 1 token fed
        fed = svc.tokens_fed
        t = time.perf_counter()
        svc.logits(step, "bench")
        cached.append(time.perf_counter() - t)
        assert svc.tokens_fed == fed + 1
        if base:
            t = time.perf_counter()
            base.logits(step, "bench")
            fp32.append(time.perf_counter() - t)
        t = time.perf_counter()
        next_logits(lm.model, step, lm.device)
        uncached.append(time.perf_counter() - t)
    return ms(cached), ms(uncached), ms(fp32) if fp32 else None


def in_fresh_thread(fn):
    """Run fn in a new thread and return its result (torch CPU speed differs between threads on a busy
    machine, so the baseline runs where the streamed generate() runs)."""
    box: list = []
    thread = threading.Thread(target=lambda: box.append(fn()))
    thread.start()
    thread.join()
    if not box:
        raise RuntimeError("baseline generate() failed")
    return box[0]


def bare_rate(store: ModelStore, ids: tuple[int, ...], new_tokens: int, seed: int) -> tuple[float, list[int]]:
    """Tokens/s of plain model.generate() with SETTINGS, in a fresh thread (as stream_generate runs it)."""
    lm = store.current
    input_ids = torch.tensor([list(ids)])

    def bare() -> torch.Tensor:
        torch.manual_seed(seed)
        return lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                 max_new_tokens=new_tokens, pad_token_id=lm.tokenizer.pad_token_id,
                                 **generate_kwargs(SETTINGS))

    t = time.perf_counter()
    out = in_fresh_thread(bare)
    produced = out.shape[1] - input_ids.shape[1]
    return produced / (time.perf_counter() - t), out[0, input_ids.shape[1]:].tolist()


def bench_stream(store: ModelStore, svc: DecodeService, new_tokens: int, rounds: int,
                 base: ModelStore | None = None) -> dict:
    """Alternating rounds: the app's streamed Generate, bare generate() in its dtype, bare fp32 generate()."""
    lm = store.current
    state = StepState(prompt=svc.encode(STORY, False))
    stream_rates, bare_rates, fp32_rates = [], [], []
    for seed in range(rounds):
        t = time.perf_counter()
        tokens = []
        for tokens in stream_generate(store, GenerateRequest(state.ids, SETTINGS, new_tokens, seed)):
            built_text_html(lm.tokenizer, state.extend(tokens))  # what the UI renders per update
        stream_rates.append(len(tokens) / (time.perf_counter() - t))
        rate, ids = bare_rate(store, state.ids, new_tokens, seed)  # same footing: a fresh thread too
        bare_rates.append(rate)
        assert ids == [c.token_id for c in tokens]
        fp32_rates.append(bare_rate(base, state.ids, new_tokens, seed)[0] if base else rate)
    med = statistics.median
    return {"stream_tok_s": round(med(stream_rates), 2), "bare_generate_tok_s": round(med(bare_rates), 2),
            "stream_vs_bare": round(med(s / b for s, b in zip(stream_rates, bare_rates)), 3),
            "app_generate_tok_s": round(med(stream_rates), 2), "bare_fp32_generate_tok_s": round(med(fp32_rates), 2),
            "cpu_speedup": round(med(s / f for s, f in zip(stream_rates, fp32_rates)), 2),
            "stream_rounds_tok_s": [round(r, 1) for r in stream_rates]}


def bench_parity(store: ModelStore, svc: DecodeService) -> float:
    lm, worst = store.current, 0.0
    for text, chat in [("The rain in Spain falls mainly in the", False), ("The capital of France is", True)]:
        ids = svc.encode(text, chat).ids
        for settings in (SETTINGS, SamplingSettings(), SamplingSettings(temperature=1.5, top_k=0, top_p=0.7)):
            shown = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings).final_probs
            input_ids = torch.tensor([list(ids)])
            out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                                    output_scores=True, return_dict_in_generate=True,
                                    pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
            worst = max(worst, float((out.scores[0][0].softmax(-1) - shown).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="alternating Generate rounds (median)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="the app's --dtype")
    parser.add_argument("--no-pack", action="store_true", help="candidate: bf16 without pre-packed weights")
    parser.add_argument("--bf16-attention", action="store_true", help="candidate: torch's bf16 SDPA, not fp32")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: what app.py picks: 1 on <= 2 CPUs, else torch's)")
    args = parser.parse_args()
    threads = args.threads or app_threads(os.cpu_count())
    if threads:
        torch.set_num_threads(threads)
    settings = LoadSettings(data_dir=args.data_dir or default_data_dir(), device="cpu", dtype=args.dtype)
    store = ModelStore(settings)
    store.load(progress=lambda msg: print(msg, flush=True))
    if args.no_pack:
        unpack_linear_weights(store.current.model)
        store.current.cpu_packed = 0
    if (args.no_pack or args.bf16_attention) and store.current.dtype == torch.bfloat16:
        store.current.base_model.set_attn_implementation("sdpa")
    base = None  # the old default, fp32, for the speed-up
    if store.current.dtype != torch.float32:
        base = ModelStore(replace(settings, dtype="float32"))
        base.load(progress=lambda msg: print(msg, flush=True))
    # Gradio runs handlers in worker threads, and torch's OpenMP behaves differently in the main thread
    # (on a busy 2-core machine, 4x slower there), so every measurement runs in a worker thread too.
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(measure(store, args, base)))
    worker.start()
    worker.join()
    if not results:
        raise SystemExit("benchmark failed (see the traceback above)")
    emit(results[0])


def measure(store: ModelStore, args: argparse.Namespace, base: ModelStore | None = None) -> dict:
    load_before = os.getloadavg()[0]  # the machine's load, to read the timings against
    svc = DecodeService(store)
    base_svc = DecodeService(base) if base else None
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the", False))
    with torch.inference_mode():
        next_logits(store.current.model, state.prompt.ids, store.current.device)  # warm-up
        refilter = bench_refilter(svc, state, args.repeats * 2)
        print(f"refilter p50 {refilter} ms", flush=True)
        forward = bench_forward(svc, args.repeats)
        print(f"forward p50 {forward} ms", flush=True)
        cached, uncached, fp32_cached = bench_steps(store, svc, args.repeats, base_svc)
        print(f"step cached {cached} ms (fp32 copy {fp32_cached} ms) vs uncached {uncached} ms", flush=True)
    gen = bench_stream(store, svc, max(64, args.new_tokens), max(5, args.rounds), base)
    stream, bare = gen["stream_tok_s"], gen["bare_generate_tok_s"]
    print(f"stream {stream} tok/s vs bare generate {bare} tok/s; bare fp32 {gen['bare_fp32_generate_tok_s']}",
          flush=True)
    parity = bench_parity(store, svc)
    from inside import measure as measure_inside  # bench/inside.py: the Inside tab's passes on the same model

    inside = measure_inside(store, 3)
    result = {
        "model": store.current.name, "device": "cpu", "torch_threads": torch.get_num_threads(),
        "dtype": str(store.current.dtype).removeprefix("torch."), "packed_linears": store.current.cpu_packed,
        "attention": store.current.base_model.config._attn_implementation,
        "refilter_ms_p50": refilter, "forward_ms_p50": forward,
        "waterfall_refilter_ms_p50": bench_waterfall_refilter(svc, state, args.repeats * 2),
        "step_cached_ms_p50": cached, "bare_fp32_step_cached_ms_p50": fp32_cached or cached,
        "step_uncached_ms_p50": uncached,
        "step_speedup": round(uncached / cached, 2) if cached else None, "step_context_tokens": 200,
        **gen, "new_tokens": max(64, args.new_tokens),
        "parity_max_abs_diff": parity, "lens_ms": inside["lens_ms"], "attention_ms": inside["attention_ms"],
        "cpu_count": os.cpu_count(),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "goals_met": {"refilter_ms_p50<30": refilter < 30, "step_speedup>=3": bool(cached and uncached / cached >= 3),
                      "stream_vs_bare>=0.95": gen["stream_vs_bare"] >= 0.95, "parity<1e-5": parity < 1e-5,
                      "step_cached_ms_p50<=35": cached <= 35, "cpu_speedup>=2": gen["cpu_speedup"] >= 2,
                      "lens_ms<=1000": inside["lens_ms"] <= 1000, "attention_ms<=1000": inside["attention_ms"] <= 1000},
    }
    return result


if __name__ == "__main__":
    main()
