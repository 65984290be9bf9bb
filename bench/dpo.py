"""DPO end to end: train the bundled "sign-off" preference recipe with its defaults on the bundled model (the
app's own job, in its worker process), then score the 50 held-out pairs and prompts, base vs tuned (the app's
preference evaluation, playground.compare.preference_eval):

* tuned_pref_acc: share of held-out pairs whose implicit DPO reward ranks chosen above rejected;
* base_pref_acc: share of held-out pairs where the base model gives the chosen answer the higher log-probability;
* base_win_rate / tuned_win_rate: share of greedy answers that follow the rule ("ends with 'Hope this helps!'").

Then the speed ratio: the app's DPO job vs a bare TRL DPOTrainer script (bench/bare_dpo.py), same model, data and
settings, `--ratio-steps` steps each, alternating order over `--rounds` rounds (pairs/s over the training loop).
Goals on this CPU: tuned_pref_acc >= 0.9 and tuned_win_rate - base_win_rate >= 0.3 with train_s <= 600.
Last line: one JSON object.

    python bench/dpo.py [--data-dir DIR] [--set key=value ...] [--rounds 1] [--ratio-steps 8] [--no-ratio]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # noqa: E402
    ROOT, bare_precision_args, emit, link_converted_models, loop_events, median, parse_value, subprocess_env,
)

from playground.model.store import LoadSettings, ModelStore  # noqa: E402
from playground.train.config import apply_overrides  # noqa: E402
from playground.train.form import recipe_config  # noqa: E402
from playground.train.manager import TrainingManager, base_ref  # noqa: E402

RECIPE, ADAPTER = "sign-off", "sign-off-bench"


def train_app(manager: TrainingManager, cfg) -> tuple[dict, object]:
    """One run of the app's job; (timings, final status)."""
    started = time.time()
    run_id = manager.start(cfg)
    st = manager.wait(run_id, timeout=7200)
    if st.state != "completed":
        raise SystemExit(f"training ended {st.state}: {st.message}")
    _, _, loop_s = loop_events(manager.runs_dir, run_id)
    return {"train_s": round(time.time() - started, 1), "loop_s": round(loop_s, 1), "steps": st.step,
            "pairs_s": st.step * cfg.train.batch_size / loop_s}, st


def train_bare(checkpoint: Path, cfg, steps: int, tmp: Path, i: int) -> dict:
    from playground.data.recipes import get_recipe

    out, m, t = tmp / f"bare-{i}.json", cfg.tuning, cfg.train
    cmd = [sys.executable, str(ROOT / "bench" / "bare_dpo.py"), str(checkpoint), str(get_recipe(RECIPE).train),
           str(out), "--steps", str(steps), "--batch", str(t.batch_size), "--lr", str(t.learning_rate),
           "--r", str(cfg.lora.r), "--alpha", str(cfg.lora.lora_alpha), "--beta", str(m.beta),
           "--max-length", str(m.max_prompt_length + m.max_completion_length), "--sft-weight", str(m.sft_weight),
           "--output-dir", str(tmp / f"b{i}"), *bare_precision_args(cfg)]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bare run failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def quality(manager: TrainingManager, store: ModelStore, data_dir: Path, cfg, a: argparse.Namespace) -> dict:
    """Train the recipe with its defaults, then score the held-out pairs and prompts, base vs tuned."""
    timing, st = train_app(manager, cfg)
    from playground.adapters.live import AdapterManager
    from playground.compare.preference_eval import PreferenceEvalRequest, evaluate_preferences

    t0 = time.time()
    result = evaluate_preferences(AdapterManager.for_data_dir(store, data_dir),
                                  PreferenceEvalRequest(RECIPE, adapter=ADAPTER, max_new_tokens=a.max_new_tokens))
    eval_s = time.time() - t0
    for prompt, base, tuned in list(zip(result.prompts, result.base_answers, result.tuned_answers))[:4]:
        print(f"  prompt: {prompt!r}\n  base:   {base!r}\n  tuned:  {tuned!r}", flush=True)
    last = st.rewards[-1] if st.rewards else {}
    return {
        "train_s": timing["train_s"], "loop_s": timing["loop_s"], "steps": timing["steps"],
        "base_pref_acc": round(result.base_prefers_chosen, 4), "tuned_pref_acc": round(result.tuned_pref_acc, 4),
        "tuned_prefers_chosen": round(result.tuned_prefers_chosen, 4),
        "base_win_rate": round(result.base_win_rate or 0.0, 4),
        "tuned_win_rate": round(result.tuned_win_rate or 0.0, 4),
        "final_train_margin": last.get("rewards/margins"), "final_train_accuracy": last.get("rewards/accuracies"),
        "test_pairs": result.rows, "eval_s": round(eval_s, 1),
        "settings": {k: v for k, v in cfg.flat_settings().items() if k != "probe_prompt"},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None, help="default: a temp dir (bundled weights are linked)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe default")
    p.add_argument("--rounds", type=int, default=1, help="speed rounds, each runs app and bare once")
    p.add_argument("--ratio-steps", type=int, default=8)
    p.add_argument("--ratio-only", action="store_true", help="only the app-vs-bare speed comparison")
    p.add_argument("--no-ratio", action="store_true", help="skip the app-vs-bare speed comparison")
    p.add_argument("--max-new-tokens", type=int, default=64)
    a = p.parse_args()
    data_dir = (a.data_dir or Path(tempfile.mkdtemp(prefix="bench-dpo-"))).expanduser().resolve()
    link_converted_models(data_dir)
    store = ModelStore(LoadSettings(data_dir=data_dir))
    store.load()
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    defaults = recipe_config(RECIPE, store.current.device.type)  # as the Train tab picks them on this device
    cfg = apply_overrides(defaults, {**overrides, "adapter_name": ADAPTER, "overwrite": True})
    cfg = dataclasses.replace(cfg, base=base_ref(store))
    manager = TrainingManager(data_dir, store)

    out = {} if a.ratio_only else quality(manager, store, data_dir, cfg, a)
    if not a.no_ratio:
        ratio_cfg = apply_overrides(cfg, {"max_steps": a.ratio_steps, "eval_fraction": 0, "probe_every": 0,
                                          "adapter_name": "dpo-ratio", "save_steps": 10_000})
        checkpoint = Path(cfg.base.checkpoint_dir)
        tmp = Path(tempfile.mkdtemp(prefix="bench-bare-dpo-"))
        app, bare = [], []
        for i in range(a.rounds):
            for kind in (("app", "bare") if i % 2 == 0 else ("bare", "app")):
                r = train_app(manager, ratio_cfg)[0] if kind == "app" else train_bare(checkpoint, ratio_cfg,
                                                                                     a.ratio_steps, tmp, i)
                (app if kind == "app" else bare).append(r["pairs_s"])
                print(f"round {i + 1} {kind}: {r['pairs_s']:.2f} pairs/s", flush=True)
        out.update(app_pairs_s=median(app), bare_pairs_s=median(bare), ratio=round(median(app) / median(bare), 3))
    emit({**out, "load_avg_1m": round(os.getloadavg()[0], 2), "adapter": str(data_dir / "adapters" / ADAPTER)})


if __name__ == "__main__":
    main()
