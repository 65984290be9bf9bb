"""The training job itself, in-process on a tiny random Llama (a few steps each)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from playground.data.sources import DataSource
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings
from playground.train.events import CHECKPOINTS, EVENTS_FILE, STOP_FILE, read_events
from playground.train.status import EventSummary, summarize
from playground.train.worker import run_job

pytestmark = pytest.mark.slow  # each test trains a tiny model for a few steps

CONTRACT_KEYS = {"name", "kind", "base_model", "base_source", "base_fingerprint", "dataset", "settings",
                 "loss_history", "eval_history", "final_train_loss", "final_eval_loss", "duration_s",
                 "created_at", "run_id"}


def job(model_dir: Path, data_dir: Path, name: str = "tiny-run", **train) -> TrainJobConfig:
    settings = dict(max_steps=3, batch_size=2, max_seq_length=64, learning_rate=5e-3, warmup=0, eval_steps=2,
                    probe_every=2, probe_max_new_tokens=4, save_steps=50)
    settings.update(train)
    return TrainJobConfig(data=DataSource(recipe="pig-latin", max_rows=16, eval_fraction=0.25),
                          lora=LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
                          train=TrainSettings(**settings),
                          base=BaseModelRef(name="tiny-llama", source=str(model_dir), fingerprint="fp-tiny"),
                          adapter_name=name, data_dir=str(data_dir))


def events(run_dir: Path) -> list[dict]:
    return read_events(run_dir / EVENTS_FILE)[0]


def test_three_steps_train_lora_only_and_save_a_loadable_adapter(tiny_llama_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "runs" / "r1"
    result = run_job(job(tiny_llama_dir, tmp_path), run_dir)
    assert result.state == "completed" and result.steps == 3
    folder = tmp_path / "adapters" / "tiny-run"
    assert result.adapter_dir == folder
    assert {"adapter_config.json", "adapter_model.safetensors", "playground.json"} <= {p.name for p in folder.iterdir()}
    meta = json.loads((folder / "playground.json").read_text())
    assert CONTRACT_KEYS <= set(meta) and meta["kind"] == "trained" and meta["base_fingerprint"] == "fp-tiny"
    assert [h["step"] for h in meta["loss_history"]] == [1, 2, 3]
    assert all(h["loss"] > 0 and h["learning_rate"] > 0 and h["grad_norm"] > 0 for h in meta["loss_history"])
    assert [e["step"] for e in meta["eval_history"]] == [2, 3] and meta["final_eval_loss"] > 0
    assert meta["settings"]["r"] == 4 and meta["settings"]["target_modules"] == ["q_proj", "v_proj"]
    assert meta["dataset"] == {"name": "pig-latin", "rows": 16, "train_rows": 12, "eval_rows": 4,  # 0.25 held out
                               "sha256": meta["dataset"]["sha256"]}
    assert meta["run_id"] == "r1" and meta["created_at"][:2] == "20"
    assert meta["settings"]["precision"] == "auto" and meta["trained_in"] == "fp32"  # what auto became here

    # LoRA weights changed (B starts at zero), base weights did not.
    lora = load_file(folder / "adapter_model.safetensors")
    assert lora and all("lora_" in k for k in lora)
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in lora.items())
    original = load_file(tiny_llama_dir / "model.safetensors")
    trained = {k: v for k, v in result.model.named_parameters()}
    q = "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    assert torch.equal(trained[q].detach(), original["model.layers.0.self_attn.q_proj.weight"])
    assert not trained[q].requires_grad

    # Loadable with PeftModel.from_pretrained, and it reproduces the trained model's output.
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(folder)).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    result.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, result.model(ids).logits, atol=1e-5)

    kinds = [e["type"] for e in events(run_dir)]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("log") == 3
    setup = next(e for e in events(run_dir) if e["type"] == "setup")
    assert setup["device"] == "cpu" and setup["precision"] == "fp32"  # TRL's bf16 default is off on a CPU
    probes = [e for e in events(run_dir) if e["type"] == "probe"]
    assert [p["step"] for p in probes] == [0, 2, 3]  # base answer, every 2 steps, final
    assert not (run_dir / CHECKPOINTS).exists()  # a completed run drops its resume checkpoints


def test_stop_mid_run_saves_the_adapter_so_far(tiny_llama_dir, tmp_path):
    run_dir = tmp_path / "runs" / "r2"
    cfg = job(tiny_llama_dir, tmp_path, name="stopped", max_steps=200, probe_every=0, eval_steps=1000)

    def stop_after_first_log() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            if any(e["type"] == "log" for e in events(run_dir)):
                (run_dir / STOP_FILE).write_text("stop")
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=stop_after_first_log)
    watcher.start()
    result = run_job(cfg, run_dir)
    watcher.join()
    assert result.state == "stopped" and 1 <= result.steps < 200
    meta = json.loads((tmp_path / "adapters" / "stopped" / "playground.json").read_text())
    assert len(meta["loss_history"]) == result.steps
    end = events(run_dir)[-1]
    assert end["type"] == "end" and end["state"] == "stopped" and end["adapter"] == "stopped"


def test_interrupted_run_resumes_from_its_checkpoint(tiny_llama_dir, tmp_path):
    run_dir = tmp_path / "runs" / "r3"
    cfg = job(tiny_llama_dir, tmp_path, name="resumed", max_steps=4, save_steps=1, probe_every=0)
    # A parent pid that is not ours = "the app went away": stop after one step with a checkpoint.
    first = run_job(cfg, run_dir, parent_pid=-1)
    assert first.state == "interrupted" and first.adapter_dir is None
    assert (run_dir / CHECKPOINTS / f"checkpoint-{first.steps}").is_dir()
    # Stop pressed while the resume loads: nothing trained, nothing saved, the checkpoint intact: still resumable.
    (run_dir / STOP_FILE).write_text("stop")
    halted = run_job(cfg, run_dir, resume=True)
    end = events(run_dir)[-1]
    assert halted.state == "interrupted" and halted.adapter_dir is None and end["state"] == "interrupted"
    assert "Resume continues from it" in end["message"]
    assert (run_dir / CHECKPOINTS / f"checkpoint-{first.steps}").is_dir()
    summary = EventSummary()
    summary.add(events(run_dir))
    assert summarize("r3", summary, alive=False, has_checkpoint=True).resumable
    (run_dir / STOP_FILE).unlink()  # what TrainingManager.resume does
    second = run_job(cfg, run_dir, resume=True)
    assert second.state == "completed" and second.steps == 4
    meta = json.loads((second.adapter_dir / "playground.json").read_text())
    assert [h["step"] for h in meta["loss_history"]] == [1, 2, 3, 4]
    begins = [e for e in events(run_dir) if e["type"] == "train_begin"]
    assert [b["start_step"] for b in begins] == [0, first.steps]
    # Each resume names its checkpoint's step at once (the live view rewinds to it while the model loads).
    starts = [e for e in events(run_dir) if e["type"] == "start"]
    assert [(e["resume"], e.get("resume_step")) for e in starts] == [(False, None), (True, first.steps),
                                                                     (True, first.steps)]


def test_taken_name_gets_a_suffix_or_is_overwritten(tiny_llama_dir, tmp_path):
    (tmp_path / "adapters" / "dup").mkdir(parents=True)
    (tmp_path / "adapters" / "dup" / "keep.txt").write_text("old")
    res = run_job(job(tiny_llama_dir, tmp_path, name="dup", max_steps=1, probe_every=0), tmp_path / "runs" / "a")
    assert res.adapter_dir.name == "dup-2" and (tmp_path / "adapters" / "dup" / "keep.txt").exists()
    cfg = job(tiny_llama_dir, tmp_path, name="dup", max_steps=1, probe_every=0)
    cfg.overwrite = True
    res = run_job(cfg, tmp_path / "runs" / "b")
    assert res.adapter_dir.name == "dup" and not (tmp_path / "adapters" / "dup" / "keep.txt").exists()


def test_nan_loss_stops_with_an_explanation(smol_tokenizer_dir, tmp_path):
    from conftest import make_tiny_llama
    from safetensors.torch import save_file

    model_dir = make_tiny_llama(tmp_path / "nan-llama", smol_tokenizer_dir)
    weights = load_file(model_dir / "model.safetensors")
    weights["model.norm.weight"] = torch.full_like(weights["model.norm.weight"], float("nan"))
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    result = run_job(job(model_dir, tmp_path, name="nan", probe_every=0), tmp_path / "runs" / "n")
    assert result.state == "failed" and result.adapter_dir is None and result.steps == 1
    assert "became NaN/inf at step 1" in result.message and "learning rate" in result.message
    assert "start a new run with a lower one" in result.message
    assert not (tmp_path / "adapters" / "nan").exists()
    end = events(tmp_path / "runs" / "n")[-1]
    assert end["state"] == "failed" and end["resumable"] is False  # a resume would replay the NaN


def test_crash_is_reported_in_the_event_log(tiny_llama_dir, tmp_path):
    run_dir = tmp_path / "runs" / "c"
    cfg = job(tiny_llama_dir, tmp_path, name="crash")
    cfg.lora.target_modules = ["no_such_layer"]
    with pytest.raises(ValueError):
        run_job(cfg, run_dir)
    end = events(run_dir)[-1]
    assert end["type"] == "end" and end["state"] == "failed" and "no_such_layer" in end["message"]


def test_qlora_4bit_job_runs_a_step_on_cpu(tiny_llama_dir, tmp_path):
    result = run_job(job(tiny_llama_dir, tmp_path, name="qlora", max_steps=1, quantization="4bit", probe_every=0),
                     tmp_path / "runs" / "q")
    assert result.state == "completed" and result.steps == 1
    base = result.model.get_base_model()
    assert type(base.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    meta = json.loads((result.adapter_dir / "playground.json").read_text())
    assert meta["settings"]["quantization"] == "4bit" and len(meta["loss_history"]) == 1


def test_probe_and_eval_schedules_scale_with_the_run(tiny_llama_dir, tmp_path):
    """Left empty, the intervals give ~8 probes and ~4 evals over the run (a 9-step run: every 2 and 3)."""
    run_dir = tmp_path / "runs" / "auto"
    result = run_job(job(tiny_llama_dir, tmp_path, name="auto", max_steps=9, probe_every=None, eval_steps=None),
                     run_dir)
    assert result.state == "completed" and result.steps == 9
    assert [e["step"] for e in events(run_dir) if e["type"] == "probe"] == [0, 2, 4, 6, 8, 9]
    assert [e["step"] for e in events(run_dir) if e["type"] == "eval"] == [3, 6, 9]
