"""A run's status around a resume, from synthetic event logs (no processes): what a resumed attempt shows while
it loads, a resume stopped while loading (still resumable), a NaN ending (not resumable), no ETA while a run
stops or saves. The worker's side of these events: test_training_job.py."""

from __future__ import annotations

import json

import pytest

from playground.train.config import TrainJobConfig
from playground.train.events import EventLog
from playground.train.manager import TrainingManager
from playground.train.status import EventSummary, summarize


def _summary(*events: dict) -> EventSummary:
    s = EventSummary()
    s.add(list(events))
    return s


def _dead_run(manager: TrainingManager, run_id: str, *events: dict, checkpoint: int) -> None:
    """A run folder with these events, a checkpoint folder, and no worker."""
    folder = manager.runs_dir / run_id
    (folder / "checkpoints" / f"checkpoint-{checkpoint}").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainJobConfig(adapter_name=run_id).to_dict()))
    log = EventLog(folder / "events.jsonl")
    for e in events:
        log.emit(e.pop("kind"), **e)


def _killed_at_20_with_a_checkpoint_at_10(t0: float = 1000.0) -> list[dict]:
    events = [{"type": "start", "t": t0}, {"type": "status", "t": t0 + 1, "state": "training", "message": "x"},
              {"type": "train_begin", "t": t0 + 2, "total_steps": 100, "start_step": 0}]
    events += [{"type": "log", "t": t0 + 2 + step, "step": step, "loss": 5.0} for step in range(1, 21)]
    events += [{"type": "eval", "t": t0 + 18, "step": 15, "eval_loss": 4.0},
               {"type": "checkpoint", "t": t0 + 13, "step": 10}]
    return events


def test_a_resume_shows_its_checkpoint_while_it_loads_not_the_old_attempts_steps():
    s = _summary(*_killed_at_20_with_a_checkpoint_at_10())
    t1 = 2000.0
    s.add([{"type": "start", "t": t1, "resume": True, "resume_step": 10},
           {"type": "status", "t": t1 + 1, "state": "loading", "message": "Loading the model and the data…"}])
    loading = summarize("r", s, alive=True, now=t1 + 5)
    assert loading.state == "loading" and loading.step == 10
    assert [r["step"] for r in loading.losses] == list(range(1, 11)) and loading.evals == []
    # A worker that did not name its step: the run's last checkpoint event says where the resume starts.
    older = _summary(*_killed_at_20_with_a_checkpoint_at_10(), {"type": "start", "t": t1, "resume": True})
    assert summarize("r", older, alive=True, now=t1 + 5).step == 10 and len(older.loss_history()) == 10


def test_a_resume_stopped_while_loading_stays_resumable(tmp_path, monkeypatch):
    from playground.train.status import resume_refusal
    from playground.train.views import status_markdown

    t1 = 2000.0
    resumed = [*_killed_at_20_with_a_checkpoint_at_10(), {"type": "start", "t": t1, "resume": True, "resume_step": 10},
               {"type": "status", "t": t1 + 1, "state": "loading", "message": "x"}]
    # What an older worker wrote for it: "stopped", nothing saved, the checkpoint intact.
    legacy = summarize("r", _summary(*resumed, {"type": "end", "t": t1 + 9, "state": "stopped",
                                                "message": "Stopped before training started; nothing to save."}),
                       alive=False, has_checkpoint=True)
    assert legacy.resumable and resume_refusal(legacy) == ""
    assert "**Resume** continues from it" in status_markdown(legacy)
    # What the worker writes now (test_training_job.py checks it does).
    now = summarize("r", _summary(*resumed, {"type": "end", "t": t1 + 9, "state": "interrupted", "step": 10,
                                             "message": "Stopped before training resumed; nothing was saved and "
                                                        "checkpoint-10 is kept: Resume continues from it."}),
                    alive=False, has_checkpoint=True)
    assert now.state == "interrupted" and now.resumable and now.step == 10
    manager = TrainingManager(tmp_path / "data")
    spawned = []
    monkeypatch.setattr(manager, "_spawn", lambda run_id, resume: spawned.append((run_id, resume)))
    _dead_run(manager, "loading", {"kind": "start"}, {"kind": "checkpoint", "step": 10},
              {"kind": "start", "resume": True, "resume_step": 10},
              {"kind": "end", "state": "stopped", "message": "Stopped before training started; nothing to save."},
              checkpoint=10)
    assert manager.resume("loading") == "loading" and spawned == [("loading", True)]
    # A stopped run that saved its adapter is still refused (see above).
    stopped = summarize("r", _summary(*resumed, {"type": "end", "t": t1 + 9, "state": "stopped", "adapter": "a",
                                                 "step": 12}), alive=False, has_checkpoint=True)
    assert not stopped.resumable and "was stopped" in resume_refusal(stopped)


def test_a_nan_ending_is_not_resumable_and_says_to_start_anew(tmp_path, monkeypatch):
    from playground.train.status import resume_refusal
    from playground.train.views import status_markdown
    from playground.train.worker import nan_message

    message = nan_message(50, "loss", 0.02)
    s = _summary(*_killed_at_20_with_a_checkpoint_at_10(),
                 {"type": "end", "t": 1100.0, "state": "failed", "step": 50, "message": message, "resumable": False})
    st = summarize("n", s, alive=False, has_checkpoint=True)
    assert st.state == "failed" and not st.resumable and st.resume_blocked
    md = status_markdown(st)
    assert "start a new run with a lower one" in md and "**Resume** continues" not in md
    assert resume_refusal(st) == ("Run n ended with a NaN/inf loss: resuming would replay the same steps from a "
                                  "checkpoint that may already hold broken weights. Start a new run with a lower "
                                  "learning rate.")
    manager = TrainingManager(tmp_path / "data")
    monkeypatch.setattr(manager, "_spawn", lambda run_id, resume: pytest.fail("a NaN run was resumed"))
    _dead_run(manager, "nan", {"kind": "start"}, {"kind": "checkpoint", "step": 10},
              {"kind": "end", "state": "failed", "step": 50, "message": message, "resumable": False}, checkpoint=10)
    with pytest.raises(ValueError, match=r"^Run nan ended with a NaN/inf loss"):
        manager.resume("nan")
    # A NaN run recorded before the worker said so (no "resumable" in its end): its last logged row shows the NaN.
    older = _summary(*_killed_at_20_with_a_checkpoint_at_10(),
                     {"type": "log", "t": 1090.0, "step": 50, "loss": float("nan"), "grad_norm": 3.0},
                     {"type": "end", "t": 1100.0, "state": "failed", "step": 50, "message": message})
    assert summarize("o", older, alive=False, has_checkpoint=True).resume_blocked
    # Any other failure with a checkpoint (a crash, an OOM) still resumes.
    crashed = _summary(*_killed_at_20_with_a_checkpoint_at_10(),
                       {"type": "end", "t": 1100.0, "state": "failed", "message": "Out of memory while training."})
    assert summarize("c", crashed, alive=False, has_checkpoint=True).resumable


def test_no_eta_while_the_run_stops_or_saves():
    s = _summary(*_killed_at_20_with_a_checkpoint_at_10()[:-2])
    assert summarize("r", s, alive=True, now=1030.0).eta_s is not None  # training: steps left x time per step
    stopping = summarize("r", s, alive=True, stop_requested=True, now=1030.0)
    assert stopping.state == "stopping" and stopping.eta_s is None
    s.add([{"type": "status", "t": 1025.0, "state": "saving", "message": "Saving the adapter…"}])
    saving = summarize("r", s, alive=True, now=1030.0)
    assert saving.state == "saving" and saving.eta_s is None
