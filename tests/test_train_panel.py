"""The Train tab's logic without Gradio (playground.train.panel): form -> config, the data preview's cache, the
live view's change detection, Start refused while a run trains, export with or without a run."""

from __future__ import annotations

import json
import subprocess

import pytest

from playground.train.config import TrainJobConfig
from playground.train.events import EventLog
from playground.train.form import LENGTH_MODE, form_values, recipe_config
from playground.train.manager import TrainingManager
from playground.train.panel import BUSY_LABEL, LATEST, TrainPanel, selected_run


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
        with pytest.raises(ValueError, match="in progress"):
            panel.start(form())
    finally:
        proc.kill()
        proc.wait()
    done = panel.live(LATEST, False, [], None)
    assert not done.busy and not panel.busy() and done.status.startswith("❌")  # died without an end event
    assert panel.live("deleted-run", False, [], None).runs == ["r1"]  # an unknown pick falls back to the latest
    assert BUSY_LABEL.startswith("Training in progress")


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
