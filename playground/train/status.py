"""Turn a run's event log into what the UI and the API show: state, progress, losses, probes (pure functions)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from playground.train.events import TERMINAL_STATES, non_finite_key

LOSS_KEYS = ("step", "loss", "learning_rate", "grad_norm")  # one row of the loss history


@dataclass
class RunStatus:
    run_id: str
    # starting | loading | training | stopping | saving | completed | stopped | failed | interrupted
    state: str = "starting"
    message: str = ""
    step: int = 0
    total_steps: int = 0
    epoch: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    tokens_per_s: float | None = None
    peak_mem_mb: float | None = None
    losses: list[dict[str, Any]] = field(default_factory=list)  # {step, loss, learning_rate, grad_norm}
    evals: list[dict[str, Any]] = field(default_factory=list)  # {step, eval_loss}
    probes: list[dict[str, Any]] = field(default_factory=list)  # {step, answer}
    probe_prompt: str = ""
    adapter: str | None = None
    adapter_name: str = ""
    trainable_params: int | None = None
    total_params: int | None = None
    train_rows: int | None = None
    eval_rows: int | None = None
    device: str = ""  # where the worker trains, e.g. "cuda"
    precision: str = ""  # bf16 / fp16 mixed precision or fp32
    started_at: float | None = None
    resumable: bool = False
    resume_blocked: bool = False  # the run's ending rules a resume out: it would replay it (a NaN loss)
    last_checkpoint: int | None = None
    method: str = "sft"  # sft | dpo | grpo (playground.train.methods)
    method_info: dict[str, Any] = field(default_factory=dict)  # start adapter, reference model, rewards
    rewards: list[dict[str, Any]] = field(default_factory=list)  # {step, <TRL reward keys>}: DPO / GRPO metrics
    eval_rewards: list[dict[str, Any]] = field(default_factory=list)  # the same at eval steps
    samples: list[dict[str, Any]] = field(default_factory=list)  # GRPO: {step, samples: [{prompt, answer, …}]}

    @property
    def active(self) -> bool:
        """The run's worker is (still) at work: not ended, and a run at all ("idle" = there is none)."""
        return self.state not in TERMINAL_STATES and self.state != "idle"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class EventSummary:
    """Running aggregate of a run's events, updated incrementally as new lines arrive."""

    losses: dict[int, dict[str, Any]] = field(default_factory=dict)
    evals: dict[int, dict[str, Any]] = field(default_factory=dict)
    probes: dict[int, dict[str, Any]] = field(default_factory=dict)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest event of each type
    attempt_start: float | None = None
    first_start: float | None = None
    end: dict[str, Any] | None = None  # terminal event of the latest attempt
    last_checkpoint: int | None = None
    resume_from: int | None = None  # the checkpoint step the latest attempt resumes from (None: a first run)
    metrics: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: {"train": {}, "eval": {}})
    samples: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            kind = e.get("type")
            if kind == "start":  # a new attempt (first run or resume): the old ending no longer applies
                self.attempt_start, self.end = e["t"], None
                self.first_start = self.first_start or e["t"]
                for k in ("status", "train_begin", "log"):
                    self.last.pop(k, None)
                # A resume restarts from its checkpoint as soon as it starts: while it loads, the old attempt's
                # steps past the checkpoint must not show (train_begin rewinds again, to where TRL really began).
                self.resume_from = e.get("resume_step", self.last_checkpoint) if e.get("resume") else None
                if self.resume_from is not None:
                    self._rewind(self.resume_from)
            elif kind == "train_begin" and e.get("start_step") is not None:
                self._rewind(e["start_step"])
            elif kind == "log":
                self.losses[e["step"]] = {k: e.get(k) for k in LOSS_KEYS}
            elif kind == "eval":
                self.evals[e["step"]] = {"step": e["step"], "eval_loss": e.get("eval_loss")}
            elif kind == "probe":
                self.probes[e["step"]] = {"step": e["step"], "answer": e.get("answer", "")}
            elif kind == "checkpoint":
                self.last_checkpoint = e["step"]
            elif kind == "metrics":
                self.metrics.setdefault(e.get("mode", "train"), {})[e["step"]] = {"step": e["step"], **e["values"]}
            elif kind == "samples":
                self.samples[e["step"]] = {"step": e["step"], "samples": e.get("samples", [])}
            elif kind == "end":
                self.end = e
            self.last[kind] = e

    def _rewind(self, start_step: int) -> None:
        """A resumed attempt restarts from its checkpoint: the rows an earlier attempt logged past it belong to a
        trajectory that no longer exists (they would keep the chart, the step and the ETA ahead of the run)."""
        for rows in (self.losses, self.evals, self.probes, self.samples, *self.metrics.values()):
            for step in [k for k in rows if k > start_step]:
                del rows[step]

    def loss_history(self) -> list[dict[str, Any]]:
        """{step, loss, learning_rate, grad_norm} per step, in step order (a repeated step: the last wins)."""
        return [self.losses[k] for k in sorted(self.losses)]

    def eval_history(self) -> list[dict[str, Any]]:
        return [self.evals[k] for k in sorted(self.evals)]


def summarize(run_id: str, s: EventSummary, *, alive: bool, stop_requested: bool = False,
              exit_code: int | None = None, log_tail: str = "", has_checkpoint: bool = False,
              now: float | None = None) -> RunStatus:
    """The run's status from its events and whether its worker process is still alive."""
    now = now or time.time()
    st = RunStatus(run_id=run_id, losses=s.loss_history(), evals=s.eval_history(),
                   probes=[s.probes[k] for k in sorted(s.probes)],
                   started_at=s.first_start, last_checkpoint=s.last_checkpoint)
    setup = s.last.get("setup", {})
    st.probe_prompt = setup.get("probe_prompt", "")
    st.trainable_params, st.total_params = setup.get("trainable_params"), setup.get("total_params")
    st.train_rows, st.eval_rows = setup.get("train_rows"), setup.get("eval_rows")
    st.device, st.precision = setup.get("device", ""), setup.get("precision", "")
    method = s.last.get("method", {})
    st.method = method.get("method", "sft")
    st.method_info = {k: method[k] for k in ("start_adapter", "reference", "rewards") if method.get(k)}
    st.rewards = [s.metrics["train"][k] for k in sorted(s.metrics.get("train", {}))]
    st.eval_rewards = [s.metrics["eval"][k] for k in sorted(s.metrics.get("eval", {}))]
    st.samples = [s.samples[k] for k in sorted(s.samples)]
    begin, log = s.last.get("train_begin"), s.last.get("log")
    if begin:
        st.total_steps = int(begin.get("total_steps") or 0)
    # The current attempt's progress (its latest log, else where it began), not the highest step ever logged.
    if log:
        st.step = log["step"]
    elif begin:
        st.step = int(begin.get("start_step") or 0)
    elif s.resume_from is not None:  # a resumed attempt still loading
        st.step = s.resume_from
    elif st.losses:
        st.step = st.losses[-1]["step"]
    if log:
        st.epoch, st.tokens_per_s, st.peak_mem_mb = log.get("epoch"), log.get("tokens_per_s"), log.get("peak_mem_mb")
    if s.end is not None:
        end = s.end
        st.state, st.message = end["state"], end.get("message", "")
        st.adapter = end.get("adapter")
        # A NaN ending: the worker says so (resumable False); runs recorded before it did show it in their last
        # logged row, which the NaN guard stopped at.
        st.resume_blocked = end.get("resumable") is False or (st.state == "failed" and non_finite_key(log) is not None)
        st.elapsed_s = round(end["t"] - (s.attempt_start or end["t"]), 1)
        st.step = end.get("step", st.step) or st.step
    elif alive:
        status = s.last.get("status", {})
        st.state = "stopping" if stop_requested else status.get("state", "starting")
        st.message = "Stopping at the end of this step…" if stop_requested else status.get("message", "Starting…")
        st.elapsed_s = round(now - (s.attempt_start or now), 1)
        # No ETA once the run winds down: stopping at this step, or saving the adapter.
        winding_down = stop_requested or st.state == "saving"
        if begin and log and st.step > begin.get("start_step", 0) and not winding_down:
            per_step = (log["t"] - begin["t"]) / (st.step - begin.get("start_step", 0))
            st.eta_s = round(max(0.0, (st.total_steps - st.step) * per_step), 1)
    else:  # the worker died without a word: killed (OOM killer, app restart) or crashed on import
        killed = ", killed: likely out of memory" if exit_code in (-9, 137) else ""
        code = "" if exit_code is None else f" (exit code {exit_code}{killed})"
        if has_checkpoint:
            st.state = "interrupted"
            st.message = (f"The training process ended unexpectedly{code}; resume from checkpoint step "
                          f"{s.last_checkpoint}.")
        else:
            st.state = "failed"
            st.message = f"The training process ended unexpectedly{code}." + (f" Last output: {log_tail}"
                                                                             if log_tail else "")
        last_t = max((e["t"] for e in s.last.values()), default=now)
        st.elapsed_s = round(last_t - (s.attempt_start or last_t), 1)
    # A stopped run with no adapter but a checkpoint was a resume stopped while loading (older workers wrote
    # "stopped"; they now write "interrupted"): its checkpoint is intact and nothing was saved.
    unfinished = st.state in ("interrupted", "failed") or (st.state == "stopped" and not st.adapter)
    st.resumable = unfinished and has_checkpoint and not alive and not st.resume_blocked
    return st


def resume_refusal(st: RunStatus) -> str:
    """Why Resume does not apply to this run ("" = it does). Only an unfinished run (interrupted, failed, or stopped
    before it saved anything) with a checkpoint resumes: a stopped or completed one already saved its adapter, and
    resuming it would rewind to the last checkpoint and save a second adapter (or overwrite the first). A NaN
    ending is not resumed either: the same steps would give the same NaN."""
    if st.resumable:
        return ""
    saved = (f"its adapter {st.adapter} was saved at step {st.step}" if st.adapter
             else "nothing was saved")
    if st.active:
        return f"Run {st.run_id} is still running ({st.state}): there is nothing to resume."
    if st.resume_blocked:
        return (f"Run {st.run_id} ended with a NaN/inf loss: resuming would replay the same steps from a checkpoint "
                "that may already hold broken weights. Start a new run with a lower learning rate.")
    if st.state == "completed":
        return f"Run {st.run_id} already completed: {saved}. Start a new run to train more."
    if st.state == "stopped":
        return (f"Run {st.run_id} was stopped: {saved}. Start a new run to train more (Resume continues only "
                "an interrupted or failed run).")
    return f"Run {st.run_id} has no checkpoint to resume from: start a new run."
