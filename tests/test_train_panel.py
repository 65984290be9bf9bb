"""The Train tab's logic without Gradio (playground.train.panel): form -> config, the data preview's cache, the
live view's change detection, a Start while a run trains answered with that run, export with or without a run."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess

import pytest

from playground.train.config import TrainJobConfig
from playground.train.events import EventLog
from playground.train.form import LENGTH_MODE, form_values, recipe_config
from playground.train.manager import STARTER_FILE, TrainingManager
from playground.train.panel import BUSY_LABEL, LATEST, Starter, TrainPanel, selected_run


@pytest.fixture()
def panel(tiny_store, tmp_path):
    data = tmp_path / "data"
    return TrainPanel(TrainingManager(data, tiny_store), tiny_store, data)


def form(**changes):
    return dict(form_values(recipe_config("pig-latin")), **changes)


def fake_run(panel: TrainPanel, run_id: str, *events: dict, alive: bool) -> subprocess.Popen | None:
    """A run folder with events; `alive` = a sleeping process stands in for its worker."""
    folder = panel.trainer.runs_dir / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(TrainJobConfig(adapter_name=run_id).to_dict()))
    log = EventLog(folder / "events.jsonl")
    for e in events:
        log.emit(e.pop("kind"), **e)
    if not alive:
        return None
    proc = subprocess.Popen(["sleep", "30"])
    panel.trainer._procs[run_id] = proc
    return proc


def test_run_picker_values():
    assert selected_run(LATEST) is None and selected_run("") is None and selected_run(None) is None
    assert selected_run("20250101-000000-x") == "20250101-000000-x"


def test_form_config_and_model_facts(panel, tmp_path):
    cfg = panel.config(form(r=8, **{LENGTH_MODE.name: "steps", "max_steps": 12}))
    assert cfg.lora.r == 8 and cfg.train.max_steps == 12 and cfg.data_dir == str(tmp_path / "data")
    assert cfg.base.fingerprint == panel.store.current.fingerprint
    assert panel.model_targets()[:2] == ["q_proj", "k_proj"] and panel.device_type() == "cpu"
    assert "Trainable parameters" in panel.describe(form(target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="LoRA rank r is empty"):
        panel.describe(form(r=None))


def test_preview_loads_a_source_once_and_follows_the_settings(panel, monkeypatch):
    import playground.data.loading as loading

    loads = []
    real = loading.load_raw
    monkeypatch.setattr(loading, "load_raw", lambda source, *a, **k: loads.append(source.recipe) or real(source))
    first = panel.preview(form(max_seq_length=32), 1)
    second = panel.preview(form(max_seq_length=256), 3)  # another row, another cut: no reload
    assert loads == ["pig-latin"]
    assert first.mask_info.startswith("Row 1:") and second.mask_info.startswith("Row 3:")
    assert "Truncated" in first.mask_info and "rows truncated" in first.lengths_figure.layout.annotations[0].text
    assert first.columns and first.headers and first.rows
    panel.preview(form(recipe="yoda"), 1)
    assert loads == ["pig-latin", "yoda"]
    with pytest.raises(ValueError, match="Upload a JSONL"):
        panel.preview(form(kind="file", path=None), 1)


def test_live_view_redraws_only_on_change_and_start_is_refused_while_busy(panel):
    empty = panel.live(LATEST, False, [], None)
    assert empty.changed and not empty.busy and "No training run yet" in empty.status
    assert not panel.live(LATEST, False, [], empty.key).changed
    proc = fake_run(panel, "r1", {"kind": "start"}, {"kind": "status", "state": "training"},
                    {"kind": "log", "step": 1, "loss": 2.0}, alive=True)
    try:
        view = panel.live(LATEST, False, [], empty.key)
        assert view.changed and view.busy and view.stoppable and view.runs == ["r1"]
        assert list(view.figure.data[0].x) == [1] and panel.busy()
        same = panel.live(LATEST, False, [], view.key)
        assert not same.changed and same.figure is None and "training" in same.status
        assert panel.live(LATEST, True, [], view.key).changed  # log scale redraws
        EventLog(panel.trainer.runs_dir / "r1" / "events.jsonl").emit("log", step=2, loss=1.5)
        assert panel.live(LATEST, False, [], view.key).changed
        assert not panel.start(form()).started
    finally:
        proc.kill()
        proc.wait()
    done = panel.live(LATEST, False, [], None)
    assert not done.busy and not panel.busy() and done.status.startswith("❌")  # died without an end event
    assert panel.live("deleted-run", False, [], None).runs == ["r1"]  # an unknown pick falls back to the latest
    assert BUSY_LABEL.startswith("Training in progress")


def test_a_start_while_another_run_trains_names_that_run_and_starts_nothing(panel):
    proc = fake_run(panel, "r1", {"kind": "start"}, {"kind": "status", "state": "training"},
                    {"kind": "train_begin", "total_steps": 40}, {"kind": "log", "step": 12, "loss": 1.2345},
                    alive=True)
    (panel.trainer.runs_dir / "r1" / STARTER_FILE).write_text(json.dumps(Starter.of(None, "tab-a").as_dict()))
    try:
        # Bad settings too: the run in the way is what the student needs to hear first, and the form is kept.
        other = panel.start(form(r=0), Starter.of(None, "tab-b"))
        assert not other.started and other.run_id == "r1"
        assert other.message == ("Another run is training: `r1`, SFT, adapter 'r1', started by another browser "
                                 "session — step 12/40, loss 1.23. Training runs one at a time: your settings are "
                                 "kept; Start again when it finishes.")
        mine = panel.start_request("pig-latin", "{}", Starter.of(None, "tab-a"))  # the API, same session
        assert not mine.started and mine.message.startswith("Your run is training: `r1`") and "by you" in mine.message
        assert panel.trainer.list_runs() == ["r1"] and panel.busy()  # nothing new was started
    finally:
        proc.kill()
        proc.wait()
    assert "tab-a" not in (panel.trainer.runs_dir / "r1" / STARTER_FILE).read_text()  # only a hash is kept


def test_16_bit_precision_on_a_cpu_is_refused_with_a_sentence(panel):
    """The tiny store runs on the CPU, where training is fp32: the API and the form name the setting, start nothing."""
    message = r"^Precision 16-bit \(bf16 / fp16 mixed precision\) needs a CUDA GPU: on cpu choose auto or fp32.$"
    with pytest.raises(ValueError, match=message):
        panel.start_request("pig-latin-grpo", json.dumps({"precision": "16-bit"}))
    with pytest.raises(ValueError, match=message):
        panel.start(form(precision="16-bit"))
    assert panel.trainer.list_runs() == []


def test_api_start_takes_the_recipes_defaults_for_the_apps_device(panel, monkeypatch):
    """/train_start with a recipe gets what the Train tab shows on this machine: its GPU defaults on a GPU."""
    started = []
    monkeypatch.setattr(panel.trainer, "start", lambda cfg, started_by=None: started.append(cfg) or "r1")
    assert panel.device_type() == "cpu"
    assert panel.start_request("pig-latin-grpo", "{}").started
    monkeypatch.setattr(panel, "device_type", lambda: "cuda")
    assert panel.start_request("pig-latin-grpo", "{}").started
    assert [c.train.batch_size for c in started] == [16, 64]


def test_whose_run_with_logins_and_without(panel, monkeypatch):
    alice, bob = Starter.of("alice", "s1"), Starter.of("bob", "s2")
    assert bob.name_of(alice.as_dict()) == "alice" and alice.name_of(Starter.of("alice", "s9").as_dict()) == "you"
    assert bob.name_of({}) == "" and Starter.of(None, None) == Starter()  # a script's run: nobody to name
    # A real Start records its starter in the run folder, where every session reads it (the worker is not spawned).
    monkeypatch.setattr(panel.trainer, "_spawn", lambda run_id, resume: None)
    started = panel.start(form(max_steps=1), bob)
    assert started.started and started.message == f"Started run `{started.run_id}`."
    assert panel.trainer.started_by(started.run_id) == bob.as_dict()


def test_export_uses_the_picked_run_or_the_form(panel):
    out = panel.export(LATEST, form(r=4, adapter_name="from-form"))
    assert out.filename == "train_from-form.py" and "r=4," in out.code
    fake_run(panel, "old", {"kind": "start"}, {"kind": "end", "state": "completed", "step": 1}, alive=False)
    assert panel.export(LATEST, form()).filename == "train_old.py"
    with pytest.raises(ValueError, match="Unknown run"):
        panel.export("missing", form())


def test_the_settings_column_is_drawn_from_the_schema():
    import gradio as gr

    from playground.train.form import form_fields
    from playground.ui.train_settings import build_settings

    with gr.Blocks():
        ui = build_settings(["q_proj", "v_proj"], "cpu")
    boxes = form_fields()
    assert list(ui.fields) == [f.name for f in boxes]
    for f in boxes:
        comp = ui.fields[f.name]
        assert comp.label == f.meta["label"] and comp.elem_id == "train-" + f.name.replace("_", "-")
        if hasattr(comp, "info") and f.meta.get("widget") != "file":
            assert comp.info == f.meta["help"]
    assert ui.fields["r"].precision == 0 and ui.fields["learning_rate"].precision is None
    # "auto" boxes are text boxes: a gr.Number cannot stay empty on the page
    assert ui.fields["probe_every"].value == "" and ui.fields["probe_every"].placeholder == "auto"
    assert ui.fields["eval_fraction"].maximum < 0.9  # the slider stays inside the validated range
    assert not ui.fields["path"].visible and not ui.hub_row.visible
    assert [c[1] for c in ui.fields["optimizer"].choices] == ["adamw_torch", "adamw_torch_fused", "adafactor", "sgd"]


def test_a_data_file_outside_the_allowed_folders_is_refused(tiny_store, tmp_path):
    """The Train tab and /train_start read a user's data file only where the app's PathPolicy allows it."""
    from playground.fsutil import PathPolicy

    data = tmp_path / "data"
    outside = tmp_path / "teacher" / "rows.jsonl"
    outside.parent.mkdir()
    outside.write_text('{"prompt": "a", "completion": "b"}\n' * 4)
    policy = PathPolicy.create(data)
    panel = TrainPanel(TrainingManager(data, tiny_store), tiny_store, data,
                       check_path=lambda path, field: policy.check(path, field))
    with pytest.raises(ValueError, match="^Data file path: .*rows.jsonl is outside the folders"):
        panel.start_request("", json.dumps({"kind": "file", "path": str(outside), "max_steps": 1}))
    assert not (data / "runs").exists() or not any((data / "runs").iterdir())  # nothing was started


def test_a_resume_that_replaces_rows_with_as_many_others_is_redrawn_and_resume_follows_the_run(panel):
    """The change key held only row counts: after a resume the old steps past the checkpoint were replaced by as
    many new ones and the chart kept the old curve. Resume is offered only for a resumable run."""
    first = [{"kind": "start"}, {"kind": "train_begin", "total_steps": 8, "start_step": 0},
             *({"kind": "log", "step": step, "loss": 2.0} for step in range(1, 5)), {"kind": "checkpoint", "step": 2}]
    fake_run(panel, "r1", *first, alive=False)  # killed at step 4, checkpoint at 2
    (panel.trainer.runs_dir / "r1" / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    before = panel.live(LATEST, False, [], None)
    assert before.changed and before.resumable and "interrupted" in before.status
    log = EventLog(panel.trainer.runs_dir / "r1" / "events.jsonl")
    log.emit("start", resume=True, resume_step=2)
    log.emit("train_begin", total_steps=8, start_step=2)
    for step in (3, 4):
        log.emit("log", step=step, loss=0.5)  # killed again at step 4: same state, same counts, other rows
    after = panel.live(LATEST, False, [], before.key)
    assert after.changed and list(after.figure.data[0].y)[-2:] == [0.5, 0.5]
    assert not panel.live(LATEST, False, [], after.key).changed
    fake_run(panel, "r2", {"kind": "start"}, {"kind": "end", "state": "completed", "adapter": "r2", "step": 1},
             alive=False)
    assert not panel.live("r2", False, [], None).resumable and panel.live("r1", False, [], None).resumable


def test_the_resume_button_is_enabled_only_by_the_live_view(tiny_store):
    from playground.services import Services
    from playground.ui.app_ui import build_app

    config = build_app(Services.create(tiny_store, tiny_store.settings.data_dir)).get_config_file()
    ids = {c["props"].get("elem_id"): c for c in config["components"]}
    resume = ids["train-resume"]
    assert resume["props"]["interactive"] is False  # until a tick shows a resumable run
    ticks = [d for d in config["dependencies"] if any(ids["train-stop"]["id"] == o for o in d["outputs"])
             and ids["train-progress"]["id"] in d["outputs"]]
    assert ticks and all(resume["id"] in d["outputs"] for d in ticks)


def test_each_method_hides_the_boxes_it_ignores_and_only_those():
    """packing and completion-only loss mean nothing to DPO and GRPO, eval every N steps nothing to GRPO; each
    shares its row with boxes that still apply, so the box is hidden, not the row."""
    import gradio as gr

    from playground.ui.train_method import hidden_rows, wire_method
    from playground.ui.train_settings import build_settings

    with gr.Blocks() as demo:
        ui = build_settings(["q_proj", "v_proj"], "cpu")
        wire_method(ui.fields, ui.method_rows, ui.method_note, lambda: [])
    (on_method,) = [f for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_method"]
    names = {id(comp): name for name, comp in ui.fields.items()}
    expected = {"sft": {"max_prompt_length"}, "dpo": {"packing", "completion_only_loss", "max_seq_length"},
                "grpo": {"packing", "completion_only_loss", "eval_steps", "max_seq_length", "max_prompt_length"}}
    for method, hidden in expected.items():
        shown = {names[id(out)]: update["visible"] for out, update in zip(on_method.outputs, on_method.fn(method))
                 if id(out) in names}
        assert {name for name, visible in shown.items() if not visible} == hidden, method
        assert not {"optim", "masking", "schedule", "batch"} & hidden_rows(method)  # the rows they share stay
    # The page opens on the first recipe's method, its ignored boxes already hidden.
    ignorable = set().union(*expected.values())
    assert {name for name in ignorable if ui.fields[name].visible is False} == expected[ui.fields["method"].value]


def test_grpo_memory_is_counted_with_the_datas_longest_prompt(panel, tmp_path):
    """GRPO's prompt part is no setting (its Max prompt length box is hidden): the estimate counts the data's own
    longest prompt, as the run tokenizes it, and says what it counted; a hub dataset is not downloaded for it."""
    import re

    from playground.train.method_views import prompt_tokens

    def rows(words: int) -> Path:
        path = tmp_path / f"prompts{words}.jsonl"
        path.write_text("\n".join(json.dumps({"prompt": " ".join(["cat"] * (words + i))}) for i in range(3)))
        return path

    def described(path: Path) -> tuple[int, float]:
        text = panel.describe(form(method="grpo", kind="file", path=str(path), num_generations=2, batch_size=4))
        counted = re.search(r"4 answers of (\d+) prompt tokens \(the data's longest\) \+ (\d+) sampled", text)
        assert counted, text
        total = re.search(r"training memory ≈ \*\*([\d.]+) MiB", text)
        return int(counted.group(1)), float(total.group(1))

    (short, short_total), (long, long_total) = described(rows(3)), described(rows(300))
    with panel.store.use() as lm:
        expected = prompt_tokens(lm.tokenizer, [{"role": "user", "content": " ".join(["cat"] * 302)}])
    assert long == expected and short < long and short_total < long_total
    hub = panel.describe(form(method="grpo", kind="hub", hub_id="someone/prompts"))
    assert "counted with prompts of 128 tokens: preview the data to count its own" in hub
    assert "prompt tokens" not in panel.describe(form(method="sft"))  # SFT counts its max sequence length
