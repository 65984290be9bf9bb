"""Pig Latin end to end: train the bundled recipe with its defaults on the bundled model (the app's own job,
in its worker process), then score the held-out test split greedily, base vs tuned (the app's evaluation).

word accuracy = words equal at the same position / words in the reference (playground.data.pig_latin).
Goals on a 2-core CPU: train_s <= 600 and tuned_word_acc >= 0.6 on sentences the model never saw.
The adapter stays in DIR/adapters/pig-latin-bench/. Last line: one JSON object.

    python bench/pig_latin.py [--data-dir DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

from _common import ROOT, emit, link_converted_models, parse_value  # noqa: E402  (sys.path, offline mode)

from playground.model.store import LoadSettings, ModelStore  # noqa: E402
from playground.train.config import apply_overrides  # noqa: E402
from playground.train.events import EVENTS_FILE, read_events  # noqa: E402
from playground.train.form import recipe_config  # noqa: E402
from playground.train.manager import TrainingManager, base_ref  # noqa: E402

ADAPTER = "pig-latin-bench"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "bench-pig-latin",
                   help="where the adapter is kept (default .data/bench-pig-latin; `make bench` runs it so)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe default, e.g. --set max_steps=50 (for experiments)")
    p.add_argument("--test-rows", type=int, default=60)
    a = p.parse_args()
    data_dir = a.data_dir.expanduser().resolve()
    link_converted_models(data_dir)  # reuse the converted bundled weights of the test cache

    store = ModelStore(LoadSettings(data_dir=data_dir))
    store.load()
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    defaults = recipe_config("pig-latin", store.current.device.type)  # as the Train tab picks them on this device
    cfg = apply_overrides(defaults, {**overrides, "adapter_name": ADAPTER, "overwrite": True})
    cfg = dataclasses.replace(cfg, base=base_ref(store))
    manager = TrainingManager(data_dir, store)

    started = time.time()
    run_id = manager.start(cfg)
    st = manager.wait(run_id, timeout=7200)
    train_s = time.time() - started
    if st.state != "completed":
        raise SystemExit(f"training ended {st.state}: {st.message}")
    events, _ = read_events(manager.runs_dir / run_id / EVENTS_FILE)
    begin = next(e for e in events if e["type"] == "train_begin")
    end = events[-1]

    from playground.adapters.live import AdapterManager
    from playground.compare.evaluation import EvalRequest, evaluate

    t0 = time.time()
    result = evaluate(AdapterManager.for_data_dir(store, data_dir),
                      EvalRequest("pig-latin", adapter=ADAPTER, max_rows=a.test_rows, batch_size=12,
                                  max_new_tokens=64))
    eval_s = time.time() - t0
    for pred, ref in list(zip(result.tuned.predictions, result.references))[:5]:
        print(f"  tuned: {pred!r}\n  ref:   {ref!r}", flush=True)
    emit({
        "train_s": round(train_s, 1), "loop_s": round(end["t"] - begin["t"], 1), "steps": st.step,
        "base_word_acc": round(result.base.word_accuracy, 4), "tuned_word_acc": round(result.tuned.word_accuracy, 4),
        "base_exact": round(result.base.exact_match, 4), "tuned_exact": round(result.tuned.exact_match, 4),
        "base_loss": round(result.base.loss, 4), "tuned_loss": round(result.tuned.loss, 4),
        "final_train_loss": st.losses[-1]["loss"] if st.losses else None, "test_rows": result.rows,
        "eval_s": round(eval_s, 1), "settings": {k: v for k, v in cfg.flat_settings().items()
                                                   if k not in ("probe_prompt",)},
        "load_avg_1m": round(os.getloadavg()[0], 2), "adapter": str(data_dir / "adapters" / ADAPTER),
    })


if __name__ == "__main__":
    main()
