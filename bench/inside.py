"""Inside tab benchmark on the bundled model (CPU). Last line: one JSON object.

Measures, server side, on a 200-token prompt (medians of alternating rounds):
  bare_forward_ms      one plain forward pass of the prompt (the baseline)
  lens_ms              the logit lens from text to result: one forward pass with hidden states, the
                       read-out of every layer at the last position and the top-1 grid (goal <= 1000)
  attention_ms         attention weights of every layer and head: one eager forward pass (goal <= 1000)
  lens_charts_ms / attention_charts_ms   building the tab's plotly figures from those results
  slice_ms             a layer/head change: re-slicing the cached weights into the three attention charts

Run: .venv/bin/python bench/inside.py [--data-dir DIR] [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import torch  # noqa: E402
from _common import ROOT, TEST_CACHE, emit, median  # noqa: E402  (sets up sys.path and offline mode)

from playground.inside.charts import (  # noqa: E402
    attention_figure,
    heads_grid_figure,
    last_token_figure,
    lens_grid_figure,
    lens_top_figure,
)
from playground.inside.service import InsideService  # noqa: E402
from playground.model.store import LoadSettings, ModelStore  # noqa: E402

STORY = ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
         "who repaired every clock in the valley. Each morning he opened his shop, wound the tall clock by the "
         "door, and listened to the ticking of a hundred clocks around him. ")
TOKENS = 200


def prompt_of(tokenizer, n: int) -> str:
    """A natural text that tokenizes to exactly n tokens."""
    ids = tokenizer(STORY * 8)["input_ids"]
    for cut in range(n, n + 8):
        text = tokenizer.decode(ids[:cut])
        if len(tokenizer(text)["input_ids"]) == n:
            return text
    raise SystemExit(f"could not build a {n}-token prompt")


def timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def measure(store: ModelStore, repeats: int) -> dict:
    load_before = os.getloadavg()[0]
    svc = InsideService(store)
    lm = store.current
    text = prompt_of(lm.tokenizer, TOKENS)
    ids = torch.tensor([lm.tokenizer(text)["input_ids"]], device=lm.device)

    def bare():
        with store.use(), torch.inference_mode():
            return lm.model(input_ids=ids)

    bare(), svc.lens(text), svc.attention(text)  # warm-up
    samples: dict[str, list[float]] = {k: [] for k in ("bare", "lens", "attn", "lens_charts", "attn_charts", "slice")}
    for i in range(repeats):
        svc.clear()
        calls = svc.model_calls
        order = [("bare", bare), ("lens", lambda: svc.lens(text)), ("attn", lambda: svc.attention(text))]
        results = {}
        for name, fn in (order if i % 2 == 0 else order[::-1]):  # alternate, so drift hits all alike
            seconds, results[name] = timed(fn)
            samples[name].append(seconds)
        assert svc.model_calls == calls + 2, "one forward pass each"
        lens, attn = results["lens"], results["attn"]
        samples["lens_charts"].append(timed(lambda: (lens_top_figure(lens), lens_grid_figure(lens)))[0])
        samples["attn_charts"].append(timed(lambda: (attention_figure(attn, 30, 0), last_token_figure(attn, 30, 0),
                                                     heads_grid_figure(attn, 30)))[0])
        layer, head = 1 + i % attn.num_layers, i % (attn.num_heads + 1)
        samples["slice"].append(timed(lambda: (svc.attention(text), attention_figure(attn, layer, head),
                                               last_token_figure(attn, layer, head), heads_grid_figure(attn, layer)))[0])
        print(f"round {i + 1}: bare {1000 * samples['bare'][-1]:.0f} ms · lens {1000 * samples['lens'][-1]:.0f} ms"
              f" · attention {1000 * samples['attn'][-1]:.0f} ms", flush=True)
    assert svc.model_calls == 2 + 2 * repeats, "a layer/head change must not run the model"

    def ms(key: str) -> float:
        return median(samples[key], scale=1000, digits=1)

    lens_ms, attention_ms, bare_ms = ms("lens"), ms("attn"), ms("bare")
    return {"model": lm.name, "device": lm.device.type, "torch_threads": torch.get_num_threads(),
            "prompt_tokens": int(ids.shape[1]), "rounds": repeats,
            "bare_forward_ms": bare_ms, "lens_ms": lens_ms, "attention_ms": attention_ms,
            "lens_vs_bare": round(lens_ms / bare_ms, 2), "attention_vs_bare": round(attention_ms / bare_ms, 2),
            "lens_charts_ms": ms("lens_charts"), "attention_charts_ms": ms("attn_charts"), "slice_ms": ms("slice"),
            "cpu_count": os.cpu_count(), "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "goals_met": {"lens_ms<=1000": lens_ms <= 1000, "attention_ms<=1000": attention_ms <= 1000}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data_dir = args.data_dir or (TEST_CACHE if any((TEST_CACHE / "models").glob("*/config.json"))
                                 else ROOT / ".data" / "bench")
    store = ModelStore(LoadSettings(data_dir=data_dir, device="cpu", dtype="auto"))  # as the app loads it
    store.load(progress=lambda msg: print(msg, flush=True))
    # Gradio runs handlers in worker threads (torch's OpenMP behaves differently in the main thread): so does this.
    results: list[dict] = []
    worker = threading.Thread(target=lambda: results.append(measure(store, args.repeats)))
    worker.start()
    worker.join()
    if not results:
        raise SystemExit("benchmark failed (see the traceback above)")
    emit(results[0])


if __name__ == "__main__":
    main()
