"""TrainingManager: the worker subprocess (one test), and status derivation from event logs (no processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from playground.data.sources import DataSource
from playground.train.config import LoraSettings, TrainJobConfig, TrainSettings
from playground.train.events import EventLog, read_events
from playground.train.manager import RunInProgressError, TrainingManager
from playground.train.status import EventSummary, summarize


def wait_for(predicate, timeout: float = 300, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError("condition not met")


@pytest.mark.slow
def test_worker_process_start_status_stop_and_crash(tiny_store, tmp_path):
    manager = TrainingManager(tmp_path / "data", tiny_store)
    cfg = TrainJobConfig(data=DataSource(recipe="pig-latin", max_rows=16, eval_fraction=0),
                         lora=LoraSettings(r=2, lora_alpha=4, target_modules=["q_proj"]),
                         train=TrainSettings(max_steps=1000, batch_size=2, max_seq_length=64, probe_every=0,
                                             warmup=0, save_steps=1000),
                         adapter_name="proc")
    run_id = manager.start(cfg)
    assert manager.active_run_id() == run_id
    with pytest.raises(RunInProgressError, match="in progress"):
        manager.start(cfg)
    st = wait_for(lambda: (s := manager.status(run_id)).step >= 1 and s)
    assert st.state == "training" and st.total_steps == 1000 and st.losses[0]["step"] == 1
    assert st.eta_s is not None and st.eta_s > 0 and st.tokens_per_s and st.peak_mem_mb > 0
    assert "Stopping" in manager.stop()
    final = manager.wait(run_id, timeout=300)
    assert final.state == "stopped" and final.adapter == "proc" and 1 <= final.step < 1000
    assert (tmp_path / "data" / "adapters" / "proc" / "adapter_model.safetensors").is_file()
    json.dumps(final.to_dict())  # the /train_status payload is plain JSON
    assert manager.active_run_id() is None

    # After an app restart a new manager rebuilds the same state from the run folder.
    again = TrainingManager(tmp_path / "data", tiny_store).status(run_id)
    assert again.state == "stopped" and again.adapter == "proc" and len(again.losses) == final.step

    # A worker killed outright (OOM killer) is reported, and the app can start another run.
    second = manager.start(cfg)
    wait_for(lambda: any(e["type"] == "start" for e in read_events(manager.runs_dir / second / "events.jsonl")[0]))
    os.kill(manager._procs[second].pid, signal.SIGKILL)
    crashed = manager.wait(second, timeout=60)
    assert crashed.state == "failed" and "exit code -9" in crashed.message and "out of memory" in crashed.message
    assert manager.active_run_id() is None and manager.list_runs()[0] == second


def test_start_refuses_bad_input_before_any_process(tiny_store, tmp_path):
    manager = TrainingManager(tmp_path / "data", tiny_store)
    bad = [
        (TrainJobConfig(lora=LoraSettings(r=0)), "LoRA rank r"),
        (TrainJobConfig(train=TrainSettings(learning_rate=0)), "Learning rate"),
        (TrainJobConfig(lora=LoraSettings(target_modules=["gate"])), "not in this model"),
        (TrainJobConfig(data=DataSource(kind="file", path=str(tmp_path / "missing.jsonl"))), "does not exist"),
    ]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad.append((TrainJobConfig(data=DataSource(kind="file", path=str(empty))), "is empty"))
    for cfg, match in bad:
        with pytest.raises(ValueError, match=match):
            manager.start(cfg)
    assert manager.list_runs() == [] and manager.status().state == "idle"
    with pytest.raises(ValueError, match="Unknown run"):
        manager.status("../etc")


def _run_folder(manager: TrainingManager, run_id: str, events: tuple[dict, ...]) -> Path:
    """A run folder with its config and these events, and no worker."""
    folder = manager.runs_dir / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainJobConfig(adapter_name=run_id).to_dict()))
    log = EventLog(folder / "events.jsonl")
    for e in events:
        log.emit(e.pop("kind"), **e)
    return folder


def _fake_run(manager: TrainingManager, run_id: str, *events: dict, lifetime_s: float) -> subprocess.Popen:
    """A run folder whose 'worker' is a sleeping process: status logic without any training."""
    _run_folder(manager, run_id, events)
    proc = subprocess.Popen(["sleep", str(lifetime_s)])
    manager._procs[run_id] = proc
    return proc


def test_start_waits_for_a_finished_worker_to_exit_but_refuses_a_running_one(tmp_path):
    manager = TrainingManager(tmp_path / "data")
    # The worker wrote its final event (the tab shows "completed") and is still freeing memory: a new Start
    # waits for that exit instead of refusing.
    exiting = _fake_run(manager, "done", {"kind": "start"}, {"kind": "end", "state": "completed", "step": 3},
                        lifetime_s=1.5)
    assert manager.status("done").state == "completed" and manager.active_run_id() == "done"
    t0 = time.time()
    with pytest.raises(ValueError, match="No model store"):  # got past the in-progress check, to the next one
        manager.start(TrainJobConfig())
    assert exiting.poll() == 0 and time.time() - t0 >= 0.5 and manager._active_unless_exiting() is None
    # A worker still training is refused at once.
    running = _fake_run(manager, "busy", {"kind": "start"}, {"kind": "log", "step": 1, "loss": 1.0}, lifetime_s=30)
    try:
        t0 = time.time()
        assert manager._active_unless_exiting() == "busy" and time.time() - t0 < 5
        with pytest.raises(RunInProgressError, match=r"in progress \(busy\)"):
            manager.start(TrainJobConfig())
    finally:
        running.kill()
        running.wait()


def test_event_log_reader_keeps_half_written_lines_for_later(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path).emit("log", step=1, loss=2.0)
    with path.open("a") as f:
        f.write('{"type": "log", "step": 2, "lo')
    events, offset = read_events(path)
    assert [e["step"] for e in events] == [1]
    with path.open("a") as f:
        f.write('ss": 1.5}\nnot json\n')
    more, _ = read_events(path, offset)
    assert [e["step"] for e in more] == [2]


def _summary(*events: dict) -> EventSummary:
    s = EventSummary()
    s.add(list(events))
    return s


def test_status_from_events_running_eta_and_dead_workers():
    t0 = 1000.0
    s = _summary({"type": "start", "t": t0}, {"type": "status", "t": t0 + 1, "state": "training", "message": "x"},
                 {"type": "train_begin", "t": t0 + 10, "total_steps": 100, "start_step": 0},
                 {"type": "log", "t": t0 + 20, "step": 5, "loss": 1.0, "tokens_per_s": 50.0},
                 {"type": "eval", "t": t0 + 21, "step": 5, "eval_loss": 1.2},
                 {"type": "probe", "t": t0 + 22, "step": 5, "answer": "ethay"})
    live = summarize("r", s, alive=True, now=t0 + 30)
    assert (live.state, live.step, live.total_steps, live.eta_s, live.elapsed_s) == ("training", 5, 100, 190.0, 30.0)
    assert live.evals == [{"step": 5, "eval_loss": 1.2}] and live.probes[0]["answer"] == "ethay"
    assert summarize("r", s, alive=True, stop_requested=True, now=t0 + 30).state == "stopping"
    dead = summarize("r", s, alive=False, exit_code=-9)
    assert dead.state == "failed" and "killed: likely out of memory" in dead.message and not dead.resumable
    s.add([{"type": "checkpoint", "t": t0 + 23, "step": 5}])
    restarted = summarize("r", s, alive=False, has_checkpoint=True)
    assert restarted.state == "interrupted" and restarted.resumable and restarted.last_checkpoint == 5
    # A resume starts a new attempt: the old "interrupted" ending no longer applies.
    s.add([{"type": "end", "t": t0 + 24, "state": "interrupted", "step": 5},
           {"type": "start", "t": t0 + 40}, {"type": "log", "t": t0 + 50, "step": 6, "loss": 0.9}])
    resumed = summarize("r", s, alive=True, now=t0 + 55)
    assert resumed.state == "starting" and resumed.step == 6 and len(resumed.losses) == 2


def _dead_run(manager: TrainingManager, run_id: str, *events: dict, checkpoint: int | None = None) -> None:
    """A run folder whose worker has ended (no process), with a checkpoint folder when `checkpoint` is set."""
    folder = _run_folder(manager, run_id, events)
    if checkpoint is not None:
        (folder / "checkpoints" / f"checkpoint-{checkpoint}").mkdir(parents=True)


def test_resume_continues_only_an_interrupted_or_failed_run_and_says_why_not(tmp_path, monkeypatch):
    from playground.ui.errors import api_errors

    manager = TrainingManager(tmp_path / "data")
    spawned = []
    monkeypatch.setattr(manager, "_spawn", lambda run_id, resume: spawned.append((run_id, resume)))
    # Stop saved the adapter at step 7 and left checkpoints: a resume would rewind to step 5 and save another.
    _dead_run(manager, "halted", {"kind": "start"}, {"kind": "checkpoint", "step": 5},
              {"kind": "end", "state": "stopped", "adapter": "halted", "step": 7}, checkpoint=5)
    stopped = ("Run halted was stopped: its adapter halted was saved at step 7. Start a new run to train more "
               "(Resume continues only an interrupted or failed run).")
    with pytest.raises(ValueError) as err:
        manager.resume("halted")
    assert str(err.value) == stopped
    import gradio as gr

    with pytest.raises(gr.Error) as api_err:  # what /train_resume answers (the tab's api_errors)
        api_errors(manager.resume)("halted")
    assert api_err.value.message == stopped
    # A completed run (its checkpoints removed) is "already completed", not "no checkpoint".
    _dead_run(manager, "done", {"kind": "start"}, {"kind": "end", "state": "completed", "adapter": "done", "step": 9})
    with pytest.raises(ValueError, match=r"^Run done already completed: its adapter done was saved at step 9\. "
                                         r"Start a new run to train more\.$"):
        manager.resume("done")
    _dead_run(manager, "early", {"kind": "start"}, {"kind": "log", "step": 1, "loss": 1.0})
    with pytest.raises(ValueError, match=r"^Run early has no checkpoint to resume from: start a new run\.$"):
        manager.resume("early")
    running = _fake_run(manager, "busy", {"kind": "start"}, {"kind": "log", "step": 1, "loss": 1.0}, lifetime_s=30)
    try:
        with pytest.raises(ValueError, match=r"^Run busy is still running \(starting\): there is nothing to resume"):
            manager.resume("busy")
    finally:
        running.kill()
        running.wait()
    assert spawned == []
    # Killed after its checkpoint at step 5: resumable.
    _dead_run(manager, "killed", {"kind": "start"}, {"kind": "checkpoint", "step": 5}, checkpoint=5)
    assert manager.status("killed").resumable and manager.resume("killed") == "killed"
    assert spawned == [("killed", True)]


def test_a_resumed_attempt_drops_the_rows_logged_past_its_checkpoint():
    t0 = 1000.0
    first = [{"type": "start", "t": t0}, {"type": "train_begin", "t": t0 + 1, "total_steps": 100, "start_step": 0}]
    first += [{"type": "log", "t": t0 + 1 + step, "step": step, "loss": 2.0} for step in range(1, 74)]
    first += [{"type": "eval", "t": t0 + 60, "step": 60, "eval_loss": 1.5},
              {"type": "checkpoint", "t": t0 + 51, "step": 50}]
    s = _summary(*first)  # killed at step 73, with a checkpoint at 50
    assert summarize("r", s, alive=False, has_checkpoint=True).step == 73
    t1 = t0 + 500
    s.add([{"type": "start", "t": t1}, {"type": "status", "t": t1 + 1, "state": "training", "message": "x"},
           {"type": "train_begin", "t": t1 + 10, "total_steps": 100, "start_step": 50}])
    begun = summarize("r", s, alive=True, now=t1 + 11)
    assert begun.step == 50 and begun.losses[-1]["step"] == 50 and begun.evals == []
    s.add([{"type": "log", "t": t1 + 20, "step": 51, "loss": 1.0},
           {"type": "log", "t": t1 + 30, "step": 52, "loss": 0.9}])
    live = summarize("r", s, alive=True, now=t1 + 31)
    assert live.step == 52 and [r["step"] for r in live.losses][-3:] == [50, 51, 52] and len(live.losses) == 52
    assert live.eta_s == (100 - 52) * 10.0  # 2 steps in 20 s since the resume, not 73 steps' worth
