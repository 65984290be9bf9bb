"""GRPO end to end on the bundled model: the "pig-latin-grpo" recipe (Pig Latin prompts, reward = word accuracy
against the rule) with its defaults on this device (on a CUDA GPU: its gpu_defaults, 64 answers a step), run by
the app's own job (worker process), then the held-out reward of greedy answers to the Pig Latin test split
(playground.compare.reward_eval).

GRPO only learns from differences between the answers to one prompt: a base model that never writes Pig Latin
scores 0 on every sample and learns nothing. So the run starts from a Pig Latin SFT adapter: `--start-adapter
NAME` (one in DATA_DIR/adapters), or a short SFT warm-up of the pig-latin recipe trained here first
(`--warmup-steps`, timed separately as warmup_s; 0 = GRPO from the base model).

base_reward: the base model; start_reward: the adapter GRPO starts from; tuned_reward: after GRPO (greedy answers).
*_sampled_reward: the same models' mean reward over `--samples` answers a prompt sampled at the run's temperature
(the policy's expected reward, what GRPO maximises; playground.compare.reward_eval explains the two readings).
reward_gain / sampled_reward_gain: tuned minus start in each reading; goal_met: each reading against the goal.
*_word_count_share / *_aligned_reward: what a greedy gain is made of (answer_shape; with the pig_latin rule on).
ratio: the app's GRPO job vs a bare TRL GRPOTrainer script (bench/bare_grpo.py), same settings, a new adapter,
`--ratio-steps` steps each, alternating over `--rounds` (sampled answers/s over the training loop).
Goal on this CPU: held-out reward up by >= 0.1 with train_s <= 900 (both readings are reported). Last line: one
JSON object.

    python bench/grpo.py [--data-dir DIR] [--start-adapter NAME | --warmup-steps 60] [--set key=value ...]
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

ADAPTER, WARMUP = "pig-latin-grpo-bench", "pig-latin-warmup"
GOAL_GAIN, GOAL_S = 0.1, 900  # the goal: held-out reward up by >= 0.1 (0-1 scale) in <= 15 minutes


def run(manager: TrainingManager, cfg) -> tuple[float, object]:
    started = time.time()
    st = manager.wait(manager.start(cfg), timeout=7200)
    if st.state != "completed":
        raise SystemExit(f"{cfg.adapter_name}: training ended {st.state}: {st.message}")
    return round(time.time() - started, 1), st


def loop_s(manager: TrainingManager, run_id: str) -> float:
    """Seconds from the start of the training loop to the last logged step (as bench/bare_grpo.py measures)."""
    return loop_events(manager.runs_dir, run_id)[2]


def bare(checkpoint: Path, cfg, steps: int, tmp: Path, i: int) -> float:
    from playground.data.recipes import get_recipe

    out, m, t = tmp / f"bare-{i}.json", cfg.tuning, cfg.train
    cmd = [sys.executable, str(ROOT / "bench" / "bare_grpo.py"), str(checkpoint), str(get_recipe("pig-latin").train),
           str(out), "--steps", str(steps), "--batch", str(t.batch_size), "--generations", str(m.num_generations),
           "--lr", str(t.learning_rate), "--r", str(cfg.lora.r), "--alpha", str(cfg.lora.lora_alpha),
           "--max-completion", str(m.max_completion_length), "--beta", str(m.kl_beta),
           "--temperature", str(m.temperature), "--output-dir", str(tmp / f"b{i}"),
           *bare_precision_args(cfg)]
    proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bare run failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())["answers_s"]


def quality(manager: TrainingManager, store: ModelStore, data_dir: Path, cfg, a: argparse.Namespace) -> dict:
    """(Warm up with SFT,) run GRPO with the recipe's defaults, then score held-out greedy answers."""
    out: dict = {}
    start = a.start_adapter
    if not start and a.warmup_steps > 0:  # seed: always 42; in the precision GRPO trains in (fp32 for auto)
        precision = "fp32" if cfg.full_precision else cfg.train.precision
        warm = apply_overrides(recipe_config("pig-latin", store.current.device.type), {
            "max_steps": a.warmup_steps, "adapter_name": WARMUP, "overwrite": True, "probe_every": 0,
            "precision": precision})
        out["warmup_s"], _ = run(manager, dataclasses.replace(warm, base=base_ref(store)))
        out["warmup_steps"], start = a.warmup_steps, WARMUP
    cfg = apply_overrides(cfg, {"start_adapter": start})
    out["train_s"], st = run(manager, cfg)
    from playground.adapters.live import AdapterManager
    from playground.compare.reward_eval import RewardEvalRequest, evaluate_rewards

    t0 = time.time()
    request = RewardEvalRequest("pig-latin", ADAPTER, max_rows=a.test_rows, batch_size=10,
                                max_new_tokens=cfg.tuning.max_completion_length, samples=a.samples)
    result = evaluate_rewards(AdapterManager.for_data_dir(store, data_dir), request)
    for label in ("start", "tuned"):
        scores = result.by_label(label)
        if scores:
            print(f"  {label}: {scores.answers[0]!r}", flush=True)
    rewards = [r for r in st.rewards if "reward" in r]
    out.update({
        "steps": st.step, "start_adapter": start or None,
        "base_reward": round(result.by_label("base").reward, 4),
        "start_reward": round(result.by_label("start").reward, 4) if result.by_label("start") else None,
        "tuned_reward": round(result.by_label("tuned").reward, 4), "test_rows": result.rows,
        **{f"{label}_sampled_reward": round(result.by_label(label).sampled_reward, 4)
           for label in ("base", "start", "tuned") if a.samples and result.by_label(label)},
        "samples": a.samples, "sample_temperature": result.temperature,
        **gains(result, out["train_s"]), **answer_shape(result),
        "first_train_reward": rewards[0]["reward"] if rewards else None,
        "last_train_reward": rewards[-1]["reward"] if rewards else None, "eval_s": round(time.time() - t0, 1),
        "settings": {k: v for k, v in cfg.flat_settings().items() if k != "probe_prompt"},
    })
    return out


def answer_shape(result) -> dict:
    """What a greedy gain is made of (reward_eval.PigLatinShape, also in Compare → Reward evaluation):
    `*_word_count_share`, the share of greedy answers with the sentence's word count, which the rule's positional
    count rewards by itself; `*_aligned_reward`, the same answers with words matched in order, where a dropped or
    invented word costs only itself. A gain in the rule's reading with none in the aligned one is the answers'
    length, not better-translated words."""
    out = {}
    for label in ("start", "tuned"):
        scores = result.by_label(label)
        if scores and scores.shape:
            out[f"{label}_aligned_reward"] = round(scores.shape.aligned, 4)
            out[f"{label}_word_count_share"] = round(scores.shape.word_count_share, 4)
    return out


def gains(result, train_s: float) -> dict:
    """What GRPO added on top of the adapter it started from, in both readings, and whether that meets the goal
    (+0.1 with train_s <= 900)."""
    start, tuned = result.by_label("start"), result.by_label("tuned")
    if not start:
        return {}
    out = {"reward_gain": round(tuned.reward - start.reward, 4)}
    if tuned.sampled_reward is not None and start.sampled_reward is not None:
        out["sampled_reward_gain"] = round(tuned.sampled_reward - start.sampled_reward, 4)
    out["goal_met"] = {reading: out[key] >= GOAL_GAIN and train_s <= GOAL_S
                       for reading, key in (("greedy", "reward_gain"), ("sampled", "sampled_reward_gain"))
                       if key in out}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--start-adapter", default="")
    p.add_argument("--warmup-steps", type=int, default=60)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--test-rows", type=int, default=60, help="held-out rows scored (the Pig Latin test split has 60)")
    p.add_argument("--samples", type=int, default=8,
                   help="sampled answers a held-out prompt at the run's temperature (0 = greedy reward only)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--ratio-steps", type=int, default=3)
    p.add_argument("--ratio-only", action="store_true", help="only the app-vs-bare speed comparison")
    p.add_argument("--no-ratio", action="store_true")
    a = p.parse_args()
    data_dir = (a.data_dir or Path(tempfile.mkdtemp(prefix="bench-grpo-"))).expanduser().resolve()
    link_converted_models(data_dir)
    store = ModelStore(LoadSettings(data_dir=data_dir))
    store.load()
    manager = TrainingManager(data_dir, store)
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    device = store.current.device.type  # the recipe's GPU defaults on a GPU, as the Train tab picks them
    cfg = apply_overrides(recipe_config("pig-latin-grpo", device), {**overrides, "adapter_name": ADAPTER,
                                                                    "overwrite": True})
    cfg = dataclasses.replace(cfg, base=base_ref(store), data_dir=str(data_dir))
    out = {} if a.ratio_only else quality(manager, store, data_dir, cfg, a)
    if not a.no_ratio:
        ratio_cfg = apply_overrides(cfg, {"max_steps": a.ratio_steps, "probe_every": 0, "start_adapter": "",
                                          "adapter_name": "grpo-ratio", "save_steps": 10_000})
        tmp = Path(tempfile.mkdtemp(prefix="bench-bare-grpo-"))
        app, bare_runs = [], []
        for i in range(a.rounds):
            for kind in (("app", "bare") if i % 2 == 0 else ("bare", "app")):
                if kind == "app":
                    _, rst = run(manager, ratio_cfg)
                    app.append(rst.step * ratio_cfg.train.batch_size / loop_s(manager, rst.run_id))
                else:
                    bare_runs.append(bare(Path(cfg.base.checkpoint_dir), ratio_cfg, a.ratio_steps, tmp, i))
                print(f"round {i + 1} {kind}: {(app if kind == 'app' else bare_runs)[-1]:.2f} answers/s", flush=True)
        out.update(app_answers_s=median(app), bare_answers_s=median(bare_runs),
                   ratio=round(median(app) / median(bare_runs), 3))
    emit({**out, "load_avg_1m": round(os.getloadavg()[0], 2), "adapter": str(data_dir / "adapters" / ADAPTER)})


if __name__ == "__main__":
    main()
