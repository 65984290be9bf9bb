"""What every benchmark starts with: the repo on sys.path, offline Hugging Face, the converted bundled
model reused from the test cache, medians, and the one JSON object each bench prints as its last line.

Imported as `import _common` (Python puts bench/ on sys.path when a bench runs as `python bench/NAME.py`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEST_CACHE = ROOT / ".data" / "test-cache"  # tests convert the bundled GGUF here once
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # benches never reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def link_converted_models(data_dir: Path) -> Path:
    """Reuse the test cache's converted bundled model in `data_dir` instead of converting it again."""
    models = data_dir / "models"
    models.mkdir(parents=True, exist_ok=True)
    for d in (TEST_CACHE / "models").glob("*"):
        target = models / d.name
        if d.is_dir() and not d.name.startswith(".") and not target.exists():
            os.symlink(d.resolve(), target)
    return data_dir


def subprocess_env() -> dict[str, str]:
    """The environment of a process a bench starts (a bare baseline, say): the repository first on PYTHONPATH,
    ahead of whatever the caller had there (a GPU machine's carried packages), and sleeping OpenMP threads
    (spinning ones starve each other when the cores are shared)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": path}


def median(values: list[float], scale: float = 1.0, digits: int = 3) -> float:
    """The median of alternating rounds (robust to one slow round on a shared machine), scaled and rounded."""
    return round(scale * statistics.median(values), digits)


def emit(result: dict[str, Any]) -> None:
    """Print the bench's result as one JSON object: the last line, which `make bench` and CI read."""
    print(json.dumps(result), flush=True)


def bare_precision_args(config: Any) -> list[str]:
    """The bare baseline's flags for the app job's precision (TrainJobConfig.full_precision: `--fp32`; else the
    baselines' default, from the hardware), so a ratio compares like with like."""
    return ["--fp32"] if config.full_precision else []


def parse_value(text: str) -> Any:
    """A `--set key=value` value: JSON when it parses (numbers, true, lists), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def loop_events(runs_dir: Path, run_id: str) -> tuple[list[dict], list[dict], float]:
    """A finished app run's (events, log events, seconds from the training loop's start to its last logged step),
    the span the bare-TRL baselines time too (bench/_clock.py)."""
    from playground.train.events import EVENTS_FILE, read_events

    events, _ = read_events(runs_dir / run_id / EVENTS_FILE)
    begin = next(e for e in events if e["type"] == "train_begin")
    logs = [e for e in events if e["type"] == "log"]
    return events, logs, logs[-1]["t"] - begin["t"]
