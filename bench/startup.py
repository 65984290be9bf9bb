"""Startup benchmark: first GGUF conversion, cached load, and `python app.py` → HTTP 200.

Baseline in the same run: a bare `from_pretrained(dir, gguf_file=...)` (what every load would cost
without the safetensors cache). Last line: one JSON object.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from _common import emit  # noqa: E402  (sets up sys.path and offline mode)
from _app_process import free_port, start_app, stop_app, wait_ready  # noqa: E402


def main() -> None:
    from transformers import AutoModelForCausalLM

    from playground.model.sources import bundled_gguf_path
    from playground.model.store import LoadSettings, load_model

    data = Path(tempfile.mkdtemp(prefix="pg-bench-startup-"))
    try:  # the converted copy (~0.5 GB) goes with the dir, whatever happens
        gguf = bundled_gguf_path()

        t = time.perf_counter()
        AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        bare_gguf_s = time.perf_counter() - t

        first = load_model(LoadSettings(data_dir=data))
        cached = [load_model(LoadSettings(data_dir=data)) for _ in range(3)]
        assert not first.from_cache and all(c.from_cache for c in cached)
        cached_s = sorted(c.load_seconds for c in cached)[1]

        port = free_port()
        t = time.perf_counter()
        proc = start_app(port, data, data / "app.log")
        try:
            wait_ready(proc, f"http://127.0.0.1:{port}/", data / "app.log", timeout=120, poll=0.05)
            app_ready_s = time.perf_counter() - t  # from before the process starts, as a user counts
        finally:
            stop_app(proc)
    finally:
        shutil.rmtree(data, ignore_errors=True)

    emit({"gguf_first_load_s": round(first.load_seconds, 2), "cached_load_s": round(cached_s, 2),
          "bare_gguf_load_s": round(bare_gguf_s, 2), "app_ready_s": round(app_ready_s, 2),
          "goal_cached_load_s": 5, "goal_app_ready_s": 10})


if __name__ == "__main__":
    main()
