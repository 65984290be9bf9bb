"""Training throughput: the app's training job vs a bare TRL SFTTrainer script, same model, data and settings.

Both run as fresh subprocesses with the same environment, alternating order (app, bare, bare, app, …), on the
bundled model and the Pig Latin recipe (completion-only loss, LoRA r=16 all-linear, no eval, no probe).
Tokens/s = tokens trained / seconds from the start of the training loop to the last logged step.
Last line: {"app_tok_s", "bare_tok_s", "ratio", "peak_rss_mb", ...}. Goals: ratio >= 1.0, peak_rss_mb < 3000.

    python bench/train.py [--steps 20] [--rounds 2] [--data-dir DIR] [--quantization 4bit --optim paged_adamw_8bit]

On a CPU peak memory is the process's peak RSS (peak_rss_mb); on a GPU it is torch's max allocated (peak_cuda_mb).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # noqa: E402  (sys.path, offline mode)
    ROOT, TEST_CACHE, bare_precision_args, emit, loop_events, median, subprocess_env,
)

from playground.data.sources import DataSource
from playground.model.gguf import convert_gguf  # noqa: E402
from playground.model.sources import bundled_gguf_path
from playground.train.config import PRECISIONS, LoraSettings, TrainJobConfig, TrainSettings  # noqa: E402
from playground.train.manager import TrainingManager  # noqa: E402


def env() -> dict[str, str]:
    return {**subprocess_env(), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def app_config(checkpoint: Path, a: argparse.Namespace, i: int) -> TrainJobConfig:
    """The app's job for this bench's flags (its precision also picks the bare baseline's)."""
    from playground.train.config import BaseModelRef

    return TrainJobConfig(
        data=DataSource(recipe="pig-latin", eval_fraction=0.0),
        lora=LoraSettings(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.05),
        train=TrainSettings(max_steps=a.steps, batch_size=a.batch, max_seq_length=a.max_length,
                            learning_rate=a.lr, lr_scheduler="cosine", warmup=0.05, probe_every=0,
                            save_steps=10_000, seed=42, quantization=a.quantization, optimizer=a.optim,
                            precision=a.precision),
        base=BaseModelRef(name="bundled", source="bundled", checkpoint_dir=str(checkpoint)),
        adapter_name=f"bench-train-{i}", overwrite=True)


def run_app(manager: TrainingManager, checkpoint: Path, a: argparse.Namespace, i: int) -> dict:
    run_id = manager.start(app_config(checkpoint, a, i))
    st = manager.wait(run_id, timeout=3600)
    if st.state != "completed":
        raise SystemExit(f"app run {run_id} ended {st.state}: {st.message}")
    events, logs, train_s = loop_events(manager.runs_dir, run_id)
    setup = next(e for e in events if e["type"] == "setup")
    peak = max(e["peak_mem_mb"] for e in logs)  # CUDA max allocated on a GPU, else the worker's peak RSS
    return {"tok_s": logs[-1]["num_tokens"] / train_s, "train_s": round(train_s, 2), "device": setup["device"],
            "precision": setup.get("precision"), "peak_rss_mb": None if setup["device"] == "cuda" else peak,
            "peak_cuda_mb": peak if setup["device"] == "cuda" else None}


def run_bare(checkpoint: Path, a: argparse.Namespace, tmp: Path, i: int) -> dict:
    from playground.data.recipes import get_recipe

    out = tmp / f"bare-{i}.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bare_sft.py"), str(checkpoint), str(get_recipe("pig-latin").train),
           str(out), "--steps", str(a.steps), "--batch", str(a.batch), "--max-length", str(a.max_length),
           "--lr", str(a.lr), "--r", str(a.r), "--alpha", str(2 * a.r), "--output-dir", str(tmp / f"bare-{i}"),
           "--quantization", a.quantization, "--optim", a.optim, *bare_precision_args(app_config(checkpoint, a, i))]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bare run failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def peak(runs: list[dict], key: str) -> float | None:
    """The highest of one memory figure over runs (None where this device does not report it)."""
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(max(values), 1) if values else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2, help="each round runs app and bare once")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="fp32: full precision on a GPU too; 16-bit: bf16 / fp16 (a GPU only)")
    p.add_argument("--quantization", choices=["none", "4bit"], default="none", help="4bit = QLoRA (NF4 + double quant)")
    p.add_argument("--optim", default="adamw_torch", help="e.g. paged_adamw_8bit (CUDA only)")
    p.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir (bundled weights are linked)")
    a = p.parse_args()

    os.environ.update(env())
    data_dir = a.data_dir or Path(tempfile.mkdtemp(prefix="bench-train-"))
    checkpoint, _ = convert_gguf(bundled_gguf_path(), TEST_CACHE if TEST_CACHE.is_dir() else data_dir)
    manager = TrainingManager(data_dir)
    tmp = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    app, bare = [], []
    started = time.time()
    # One short untimed run first: the first process pays for cold file caches (and CUDA's kernel loading).
    run_bare(checkpoint, argparse.Namespace(**{**vars(a), "steps": 3}), tmp, -1)
    for i in range(a.rounds):
        order = ("app", "bare") if i % 2 == 0 else ("bare", "app")
        for kind in order:
            result = run_app(manager, checkpoint, a, i) if kind == "app" else run_bare(checkpoint, a, tmp, i)
            (app if kind == "app" else bare).append(result)
            print(f"round {i + 1} {kind}: {result['tok_s']:.1f} tok/s over {result['train_s']} s", flush=True)
    app_tok_s = median([r["tok_s"] for r in app])  # median of the alternating rounds
    bare_tok_s = median([r["tok_s"] for r in bare])
    emit({
        "app_tok_s": round(app_tok_s, 2), "bare_tok_s": round(bare_tok_s, 2), "ratio": round(app_tok_s / bare_tok_s, 3),
        "peak_rss_mb": peak(app, "peak_rss_mb"), "bare_peak_rss_mb": peak(bare, "peak_rss_mb"),
        "peak_cuda_mb": peak(app, "peak_cuda_mb"), "bare_peak_cuda_mb": peak(bare, "peak_cuda_mb"),
        "device": app[0]["device"], "precision": app[0]["precision"], "quantization": a.quantization,
        "optim": a.optim,
        "app_runs_tok_s": [round(r["tok_s"], 2) for r in app], "bare_runs_tok_s": [round(r["tok_s"], 2) for r in bare],
        "steps": a.steps, "batch": a.batch, "rounds": a.rounds, "load_avg_1m": round(os.getloadavg()[0], 2),
        "wall_s": round(time.time() - started, 1),
    })


if __name__ == "__main__":
    main()
