"""Decode tab benchmark on the bundled model (CPU). Last line: one JSON object.

Measures, server side:
  refilter_ms_p50      a slider change: re-filter cached logits and rebuild chart/table/text (goal < 30)
  forward_ms_p50       a new prompt: one forward pass
  step_cached_ms_p50   one step with the session's KV cache at 200 tokens of context
  step_uncached_ms_p50 the same step as a fresh forward pass over all 201 tokens (ratio goal >= 3)
  stream_tok_s         'Generate N tokens' through the streamer, recorder and coloured-text rendering
  bare_generate_tok_s  plain model.generate() with the same settings and seed (ratio goal >= 0.95)
  parity_max_abs_diff  shown final probabilities vs softmax(generate(output_scores=True)) (goal < 1e-5)

Run: .venv/bin/python bench/decode.py [--data-dir DIR] [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT, TEST_CACHE, emit, median  # noqa: E402  (sets up sys.path and offline mode)

from playground.decode.sampling import SamplingSettings, analyze, generate_kwargs, next_logits  # noqa: E402
from playground.decode.session import DecodeService, StepState  # noqa: E402
from playground.decode.stream import GenerateRequest, stream_generate  # noqa: E402
from playground.decode.views import built_text_html, distribution_view  # noqa: E402
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


def bench_forward(svc: DecodeService, repeats: int) -> float:
    samples = []
    for i in range(repeats):
        ids = svc.encode(f"Question {i}: what is the capital of country number {i}? The answer is", False).ids
        t = time.perf_counter()
        svc.logits(ids)
        samples.append(time.perf_counter() - t)
    return ms(samples)


def bench_steps(store: ModelStore, svc: DecodeService, repeats: int) -> tuple[float, float]:
    lm = store.current
    ids = svc.encode(STORY * 6, False).ids[:200]
    svc.logits(ids, "bench")  # the session's KV cache now holds 200 tokens
    cached, uncached = [], []
    for i in range(repeats):
        step = ids + (1000 + i,)  # a different next token each time: the cache is cropped back, 1 token fed
        fed = svc.tokens_fed
        t = time.perf_counter()
        svc.logits(step, "bench")
        cached.append(time.perf_counter() - t)
        assert svc.tokens_fed == fed + 1
        t = time.perf_counter()
        next_logits(lm.model, step, lm.device)
        uncached.append(time.perf_counter() - t)
    return ms(cached), ms(uncached)


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


def bench_stream(store: ModelStore, svc: DecodeService, new_tokens: int, repeats: int) -> tuple[float, float]:
    lm = store.current
    state = StepState(prompt=svc.encode(STORY, False))
    stream_rates, bare_rates = [], []
    for seed in range(repeats):
        t = time.perf_counter()
        tokens = []
        for tokens in stream_generate(store, GenerateRequest(state.ids, SETTINGS, new_tokens, seed)):
            built_text_html(lm.tokenizer, state.extend(tokens))  # what the UI renders per update
        stream_rates.append(len(tokens) / (time.perf_counter() - t))
        input_ids = torch.tensor([list(state.ids)])

        def bare() -> torch.Tensor:
            torch.manual_seed(seed)
            return lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                     max_new_tokens=new_tokens, pad_token_id=lm.tokenizer.pad_token_id,
                                     **generate_kwargs(SETTINGS))

        t = time.perf_counter()
        out = in_fresh_thread(bare)  # stream_generate runs generate() in a fresh thread too: same footing
        produced = out.shape[1] - input_ids.shape[1]
        bare_rates.append(produced / (time.perf_counter() - t))
        assert produced == len(tokens) and out[0, input_ids.shape[1]:].tolist() == [c.token_id for c in tokens]
    return round(statistics.median(stream_rates), 2), round(statistics.median(bare_rates), 2)


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
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice, as the app runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    store = ModelStore(LoadSettings(data_dir=args.data_dir or default_data_dir(), device="cpu"))
    store.load(progress=lambda msg: print(msg, flush=True))
    # Gradio runs handlers in worker threads, and torch's OpenMP behaves differently in the main thread
    # (on a busy 2-core machine, 4x slower there), so every measurement runs in a worker thread too.
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(measure(store, args)))
    worker.start()
    worker.join()
    if not results:
        raise SystemExit("benchmark failed (see the traceback above)")
    emit(results[0])


def measure(store: ModelStore, args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]  # the machine's load, to read the timings against
    svc = DecodeService(store)
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the", False))
    with torch.inference_mode():
        next_logits(store.current.model, state.prompt.ids, store.current.device)  # warm-up
        refilter = bench_refilter(svc, state, args.repeats * 2)
        print(f"refilter p50 {refilter} ms", flush=True)
        forward = bench_forward(svc, args.repeats)
        print(f"forward p50 {forward} ms", flush=True)
        cached, uncached = bench_steps(store, svc, args.repeats)
        print(f"step cached {cached} ms vs uncached {uncached} ms", flush=True)
    stream, bare = bench_stream(store, svc, args.new_tokens, max(3, args.repeats // 5))
    print(f"stream {stream} tok/s vs bare generate {bare} tok/s", flush=True)
    parity = bench_parity(store, svc)
    result = {
        "model": store.current.name, "device": "cpu", "torch_threads": torch.get_num_threads(),
        "refilter_ms_p50": refilter, "forward_ms_p50": forward,
        "step_cached_ms_p50": cached, "step_uncached_ms_p50": uncached,
        "step_speedup": round(uncached / cached, 2) if cached else None, "step_context_tokens": 200,
        "stream_tok_s": stream, "bare_generate_tok_s": bare,
        "stream_vs_bare": round(stream / bare, 3) if bare else None, "new_tokens": args.new_tokens,
        "parity_max_abs_diff": parity, "cpu_count": os.cpu_count(),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "goals_met": {"refilter_ms_p50<30": refilter < 30, "step_speedup>=3": bool(cached and uncached / cached >= 3),
                      "stream_vs_bare>=0.95": bool(bare and stream / bare >= 0.95), "parity<1e-5": parity < 1e-5},
    }
    return result


if __name__ == "__main__":
    main()
