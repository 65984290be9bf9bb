"""TrainingManager: starts, watches, stops and resumes training runs; owned by the app, not by a browser tab.

Each run lives in `<data-dir>/runs/<run_id>/` (config.json, events.jsonl, worker.log, checkpoints/) and is
trained by a separate worker process (`python -m playground.train.worker <run_dir>`), so the app keeps
serving its own model, and a crash or OOM in training cannot take it down. Closing the page changes nothing;
the status is rebuilt from the run folder, also after an app restart. One run at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from playground.model.inspect import linear_layer_names
from playground.model.sources import pick_device
from playground.model.store import ModelStore
from playground.train.config import ALL_LINEAR, BaseModelRef, TrainJobConfig
from playground.train.events import CHECKPOINTS, CONFIG_FILE, EVENTS_FILE, LOG_FILE, PID_FILE, STOP_FILE, read_events
from playground.train.launch import launcher_env, worker_command
from playground.train.sizing import SettingsDescriber
from playground.train.status import EventSummary, RunStatus, resume_refusal, summarize

ROOT = Path(__file__).resolve().parents[2]  # the repository root (the worker runs with it as cwd)
# Who pressed Start ({"user", "session"}: playground.train.panel.Starter), kept with the run so that every
# browser session, and the app after a restart, can say whose run is training.
STARTER_FILE = "started_by.json"
RUN_ID_MAX = 120  # new_run_id's cap: a longer id names no run


class RunInProgressError(ValueError):
    """A second Start while a run is active."""


def new_run_id(adapter_name: str) -> str:
    return f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{adapter_name}"[:RUN_ID_MAX]


def base_ref(store: ModelStore) -> BaseModelRef:
    """How the worker reloads the app's current base model (its plain safetensors copy when there is one)."""
    lm = store.current
    ckpt = str(lm.checkpoint_dir) if lm.checkpoint_dir else None
    return BaseModelRef(name=lm.name, source=lm.source, fingerprint=lm.fingerprint, checkpoint_dir=ckpt,
                        device=store.settings.device, trust_remote_code=store.settings.trust_remote_code)


@dataclasses.dataclass
class _RunCache:
    offset: int = 0
    summary: EventSummary = dataclasses.field(default_factory=EventSummary)


class TrainingManager:
    def __init__(self, data_dir: Path, store: ModelStore | None = None, python: str = sys.executable):
        self.data_dir, self.store, self.python = Path(data_dir), store, python
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._cache: dict[str, _RunCache] = {}
        self._describer = SettingsDescriber()

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        if not isinstance(run_id, str):  # API callers send any JSON
            raise ValueError(f"Unknown run {run_id!r}: a run id is text, as /train_start returns it.")
        if len(run_id) > RUN_ID_MAX:  # and the file system would refuse so long a name (OSError)
            raise ValueError(f"Unknown run {run_id[:40]!r}… (a run id has at most {RUN_ID_MAX} characters).")
        if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
            raise ValueError(f"Unknown run {run_id!r}.")
        path = self.runs_dir / run_id
        if not (path / CONFIG_FILE).is_file():
            raise ValueError(f"Unknown run {run_id!r}.")
        return path

    # ------------------------------------------------------------ queries

    def list_runs(self) -> list[str]:
        """Run ids, newest first."""
        if not self.runs_dir.is_dir():
            return []
        runs = [p.name for p in self.runs_dir.iterdir() if (p / CONFIG_FILE).is_file()]
        return sorted(runs, key=lambda r: (self.runs_dir / r / CONFIG_FILE).stat().st_mtime, reverse=True)

    def config(self, run_id: str) -> TrainJobConfig:
        import json

        return TrainJobConfig.from_dict(json.loads((self.run_dir(run_id) / CONFIG_FILE).read_text()))

    def _alive(self, run_id: str) -> tuple[bool, int | None]:
        """(worker alive, exit code if known). Runs started before an app restart are found by their pid file."""
        proc = self._procs.get(run_id)
        if proc is not None:
            code = proc.poll()
            return code is None, code
        pid_file = self.runs_dir / run_id / PID_FILE
        if not pid_file.is_file():
            return False, None
        try:
            import psutil

            p = psutil.Process(int(pid_file.read_text().split()[0]))
            cmd = " ".join(p.cmdline())
            return ("playground.train.worker" in cmd and run_id in cmd and p.status() != psutil.STATUS_ZOMBIE), None
        except Exception:  # no such process, or not ours
            return False, None

    def status(self, run_id: str | None = None) -> RunStatus:
        """Live status of a run (default: the active one, else the newest)."""
        run_id = run_id or self.active_run_id() or next(iter(self.list_runs()), None)
        if run_id is None:
            return RunStatus(run_id="", state="idle", message="No training run yet.")
        folder = self.run_dir(run_id)
        with self._lock:
            cache = self._cache.setdefault(run_id, _RunCache())
            events, cache.offset = read_events(folder / EVENTS_FILE, cache.offset)
            cache.summary.add(events)
            alive, code = self._alive(run_id)
            tail = ""
            if not alive and cache.summary.end is None and (folder / LOG_FILE).is_file():
                lines = [ln for ln in (folder / LOG_FILE).read_text(errors="replace").splitlines() if ln.strip()]
                tail = lines[-1][-300:] if lines else ""
            st = summarize(run_id, cache.summary, alive=alive, stop_requested=(folder / STOP_FILE).exists(),
                           exit_code=code, log_tail=tail, has_checkpoint=self._has_checkpoint(folder))
        st.adapter_name = self.config(run_id).adapter_name
        return st

    @staticmethod
    def _has_checkpoint(folder: Path) -> bool:
        ckpts = folder / CHECKPOINTS
        return ckpts.is_dir() and any(p.name.startswith("checkpoint-") for p in ckpts.iterdir())

    def active_run_id(self) -> str | None:
        """The run whose worker is alive, if any."""
        for run_id in self.list_runs():
            if self._alive(run_id)[0]:
                return run_id
        return None

    def started_by(self, run_id: str) -> dict[str, Any]:
        """Who started the run; {} for a run started by a script, or before starters were recorded."""
        import json

        try:
            return json.loads((self.run_dir(run_id) / STARTER_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _active_unless_exiting(self, grace_s: float = 30.0) -> str | None:
        """The active run, except one whose worker already wrote its final event and is only exiting (freeing
        memory takes a moment): wait for that exit instead of refusing a Start the tab already allows."""
        active = self.active_run_id()
        if active is None:
            return None
        if self.status(active).active:  # no final event yet: really training
            return active
        deadline = time.time() + grace_s
        while self._alive(active)[0] and time.time() < deadline:
            time.sleep(0.1)
        return self.active_run_id()

    def loss_history(self, run_id: str) -> list[dict[str, Any]]:
        return self.status(run_id).losses

    def describe_settings(self, config: TrainJobConfig, prompt_tokens: int | None = None) -> str:
        """Markdown: trainable parameters of these LoRA settings on the app's model, and the memory estimate
        (GRPO: with the data's longest prompt, `prompt_tokens`, when the caller measured it)."""
        config.lora.validate()
        return "" if self.store is None else self._describer.describe(self.store, config, prompt_tokens)

    # ------------------------------------------------------------ actions

    def base_ref(self) -> BaseModelRef:
        if self.store is None:
            raise ValueError("No model store: pass the base model in the config.")
        return base_ref(self.store)

    def check(self, config: TrainJobConfig) -> Any:
        """Everything that can be refused before a worker starts: settings, target modules, the data itself.
        Returns the prepared data (row counts for the UI). Raises ValueError with a user-facing sentence."""
        from playground.train.method_run import prepare_method_data, start_adapter_dir

        # No store (scripts, benches): the worker picks the device the same way, cuda > mps > cpu.
        device = config.base.device or (self.store.current.device.type if self.store is not None and self.store.loaded
                                        else pick_device(None).type)
        config.validate(device)
        if self.store is not None and self.store.loaded:
            with self.store.use() as lm:
                known = linear_layer_names(lm.base_model)
                has_template = bool(lm.tokenizer.chat_template)
                hidden, model_name = getattr(lm.base_model.config, "hidden_size", None), lm.name
            # A rank above the hidden size adds no capacity, only memory (LoraSettings.r's fixed bound is wider).
            if isinstance(hidden, int) and config.lora.r > hidden:
                raise ValueError(f"LoRA rank r must be at most {hidden}, the hidden size of {model_name} "
                                 f"(got {config.lora.r}).")
            unknown = [m for m in config.lora.target_modules if m != ALL_LINEAR and m not in known]
            if unknown:
                raise ValueError(f"Target module(s) {', '.join(unknown)} not in this model; it has "
                                 f"{', '.join(known)}.")
        else:
            has_template = True
        start_adapter_dir(config)  # a missing adapter, or one of another base model, is refused here
        return prepare_method_data(config, has_chat_template=has_template)  # SFT rows, DPO pairs, GRPO prompts

    def start(self, config: TrainJobConfig, started_by: dict[str, Any] | None = None) -> str:
        """Validate, create the run folder (with `started_by`, see STARTER_FILE) and launch the worker; returns the
        run id."""
        with self._lock:
            active = self._active_unless_exiting()
            if active:
                raise RunInProgressError(f"A training run is in progress ({active}): stop it or wait for it to "
                                         "finish before starting another.")
            if not config.base.load_source:
                config = dataclasses.replace(config, base=self.base_ref())
            config = dataclasses.replace(config, data_dir=str(self.data_dir))
            self.check(config)
            run_id = new_run_id(config.adapter_name)
            folder = self.runs_dir / run_id
            folder.mkdir(parents=True, exist_ok=False)
            if config.data.kind == "file":  # keep the data with the run: the upload's temp file goes away
                src = Path(config.data.path)
                dst = folder / f"data{src.suffix.lower()}"
                shutil.copyfile(src, dst)
                config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(dst)))
            from playground.fsutil import write_json_atomic

            if started_by:  # before config.json: a run is listed from then on, with its starter
                write_json_atomic(folder / STARTER_FILE, started_by)
            write_json_atomic(folder / CONFIG_FILE, config.to_dict())
            self._spawn(run_id, resume=False)
            return run_id

    def resume(self, run_id: str) -> str:
        """Continue an interrupted or failed run from its last checkpoint (same run folder, same settings); any
        other run is refused with a sentence saying why (status.resume_refusal)."""
        with self._lock:
            folder = self.run_dir(run_id)
            active = self._active_unless_exiting()  # first: a worker only exiting is waited for
            refusal = resume_refusal(self.status(run_id))
            if refusal:
                raise ValueError(refusal)
            if active:
                raise RunInProgressError(f"A training run is in progress ({active}).")
            (folder / STOP_FILE).unlink(missing_ok=True)
            self._spawn(run_id, resume=True)
            return run_id

    def _spawn(self, run_id: str, resume: bool) -> None:
        folder = self.runs_dir / run_id
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        # The worker shares the CPU cores with the app; spinning OpenMP threads starve each other when the
        # cores are oversubscribed (measured ~2x slower steps), sleeping ones do not.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        # 1 process: the worker itself; N: `accelerate launch` of N workers (the pid file then names the
        # launcher, whose command line also holds "playground.train.worker" and the run folder).
        config = self.config(run_id)
        t, device = config.train, config.base.device
        env.update(launcher_env(t.processes, device))
        cmd = worker_command(self.python, folder, resume, t.processes, t.strategy, device)
        with (folder / LOG_FILE).open("ab") as log:
            proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL)
        self._procs[run_id] = proc
        (folder / PID_FILE).write_text(f"{proc.pid}\n")
        self._cache.pop(run_id, None)  # re-read from the start: a resume appends a new attempt

    def stop(self, run_id: str | None = None) -> str:
        """Ask the run to stop at the end of its current step; it then saves the adapter trained so far."""
        run_id = run_id or self.active_run_id()
        if not run_id:
            return "No run is in progress."
        folder = self.run_dir(run_id)
        if not self._alive(run_id)[0]:
            return f"Run {run_id} is not running."
        (folder / STOP_FILE).write_text(f"{time.time()}\n")
        return f"Stopping {run_id} at the end of the current step; the adapter trained so far will be saved."

    def wait(self, run_id: str, timeout: float = 600, poll: float = 0.5) -> RunStatus:
        """Block until the run ends (tests, benchmarks, scripts)."""
        deadline = time.time() + timeout
        while True:
            st = self.status(run_id)
            if not st.active:
                proc = self._procs.get(run_id)
                if proc is not None:
                    proc.wait(timeout=60)
                return st
            if time.time() > deadline:
                raise TimeoutError(f"Run {run_id} still {st.state} after {timeout} s.")
            time.sleep(poll)
