"""Training on several processes: the Processes setting, the accelerate config in the run folder, and runs of 2
CPU ranks over gloo started by the manager through `accelerate launch` (tiny Llama, a few steps)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import yaml
from safetensors.torch import load_file

from playground.data.sources import DataSource
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings, apply_overrides
from playground.train.distributed import RankEventLog
from playground.train.events import EVENTS_FILE, STOP_FILE, read_events
from playground.train.export import export_script
from playground.train.launch import (
    ACCELERATE_CONFIG,
    check_launch,
    process_choices,
    strategy_choices,
    worker_command,
)
from playground.train.manager import TrainingManager
from playground.train.worker import run_job

# ---------------------------------------------------------------- the setting (no processes)


def test_processes_setting_is_checked_against_the_machine():
    TrainSettings(processes=2).validate("cpu")  # 2 CPU processes over gloo: allowed
    with pytest.raises(ValueError, match=r"^Processes must be 1 or 2 on a machine without a GPU \(got 3\)"):
        TrainSettings(processes=3).validate("cpu")
    with pytest.raises(ValueError, match=r"^Processes must be at most 2, the number of GPUs on this machine"):
        check_launch(3, "ddp", "cuda", gpus=2)
    check_launch(4, "fsdp", "cuda", gpus=4)
    with pytest.raises(ValueError, match=r"^Processes must be 1 on mps"):
        check_launch(2, "ddp", "mps")
    with pytest.raises(ValueError, match=r"^Parallelism FSDP shards the model across CUDA GPUs .* on a CPU"):
        TrainSettings(processes=2, strategy="fsdp").validate("cpu")
    with pytest.raises(ValueError, match=r"^Parallelism FSDP with 8-bit / 4-bit quantization is not supported"):
        check_launch(2, "fsdp", "cuda", "4bit", gpus=2)
    with pytest.raises(ValueError, match=r"^Parallelism must be one of ddp, fsdp, zero3 \(got 'tp'\)"):
        TrainSettings(strategy="tp").validate("cpu")
    with pytest.raises(ValueError, match=r"^Processes must be a whole number of at least 1 \(got 0\)"):
        TrainSettings(processes=0).validate("cpu")
    TrainSettings(processes=1, strategy="fsdp").validate("cpu")  # one process: the strategy does not apply
    assert apply_overrides(TrainJobConfig(), {"processes": "2"}).train.processes == 2  # API / form coercion
    assert process_choices("cpu") == [1, 2] and process_choices("cuda", gpus=4) == [1, 2, 3, 4]
    assert process_choices("mps") == [1]
    assert [v for _, v in strategy_choices("cpu")] == ["ddp"]  # FSDP needs CUDA; ZeRO-3 needs deepspeed
    assert "fsdp" in [v for _, v in strategy_choices("cuda")]


def test_one_process_keeps_the_plain_worker_and_several_go_through_accelerate(tmp_path):
    assert worker_command("py", tmp_path, False, 1, "ddp", "cpu") == ["py", "-m", "playground.train.worker",
                                                                    str(tmp_path)]
    assert not (tmp_path / ACCELERATE_CONFIG).exists()
    cmd = worker_command("py", tmp_path, True, 2, "ddp", "cpu")
    config_file = tmp_path / ACCELERATE_CONFIG
    assert cmd == ["py", "-m", "accelerate.commands.launch", "--config_file", str(config_file), "-m",
                   "playground.train.worker", str(tmp_path), "--resume"]
    cfg = yaml.safe_load(config_file.read_text())
    assert (cfg["num_processes"], cfg["num_machines"], cfg["use_cpu"], cfg["distributed_type"]) == (2, 1, True,
                                                                                                     "MULTI_GPU")
    worker_command("py", tmp_path, False, 2, "fsdp", "cuda")
    fsdp = yaml.safe_load(config_file.read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_use_orig_params"] is False


def test_only_rank_0_reports_and_the_first_failure_explains_the_run(tmp_path):
    path = tmp_path / EVENTS_FILE
    main, other = RankEventLog(path, 0, 2), RankEventLog(path, 1, 2)
    other.emit("start", pid=1)
    other.emit("log", step=1, loss=1.0)
    main.emit("log", step=1, loss=1.0)
    other.emit("end", state="failed", message="Out of memory.", detail="Traceback …")
    main.emit("end", state="failed", message="Training failed: RuntimeError: connection closed", detail="…")
    events = read_events(path)[0]
    assert [e["type"] for e in events] == ["log", "end"]
    assert events[1]["message"] == "Process 2 of 2: Out of memory." and events[1]["rank"] == 1


# ---------------------------------------------------------------- 2 CPU ranks through accelerate launch

@pytest.fixture(scope="module")
def tiny_model(smol_tokenizer_dir, tmp_path_factory) -> Path:
    from conftest import make_tiny_llama

    return make_tiny_llama(tmp_path_factory.mktemp("ddp-llama"), smol_tokenizer_dir, hidden_size=32,
                           intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)


def job(model: Path, name: str, eval_fraction: float = 0.25, **train) -> TrainJobConfig:
    settings = dict(max_steps=3, batch_size=2, max_seq_length=64, learning_rate=5e-3, warmup=0, eval_steps=2,
                    probe_every=1, probe_max_new_tokens=4, save_steps=2, processes=2)
    settings.update(train)
    return TrainJobConfig(data=DataSource(recipe="pig-latin", max_rows=16, eval_fraction=eval_fraction),
                          lora=LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
                          train=TrainSettings(**settings), base=BaseModelRef(name="tiny", source=str(model)),
                          adapter_name=name)


def of_type(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir / EVENTS_FILE)[0] if e["type"] == kind]


def wait_for(predicate, timeout: float = 120, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise TimeoutError("condition not met")


def processes_of(run_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter():
        try:
            if str(run_dir) in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.slow
def test_two_cpu_processes_train_like_one_and_report_once(tiny_model, tmp_path):
    manager = TrainingManager(tmp_path / "data")
    run_id = manager.start(job(tiny_model, "ddp"))
    run_dir = manager.runs_dir / run_id
    assert manager.active_run_id() == run_id  # the launcher's pid counts as the worker's
    final = manager.wait(run_id, timeout=240)
    assert final.state == "completed" and final.adapter == "ddp", final.message
    assert manager.active_run_id() is None and not processes_of(run_dir)  # launcher and both ranks are gone

    assert [e["step"] for e in of_type(run_dir, "log")] == [1, 2, 3]  # one row per step: rank 1 writes none
    assert len(of_type(run_dir, "start")) == 1 and len(of_type(run_dir, "end")) == 1
    assert [p["step"] for p in of_type(run_dir, "probe")] == [0, 1, 2, 3]  # rank 0 probes, once per step
    assert [e["step"] for e in of_type(run_dir, "eval")] == [2, 3] and final.device == "cpu ×2"

    # the same job in one process: the same adapter shapes; per step the 2 ranks together saw twice the rows
    single = run_job(dataclasses.replace(job(tiny_model, "one", processes=1), data_dir=str(tmp_path / "data")),
                     tmp_path / "one")
    two = load_file(tmp_path / "data" / "adapters" / "ddp" / "adapter_model.safetensors")
    one = load_file(single.adapter_dir / "adapter_model.safetensors")
    assert {k: v.shape for k, v in two.items()} == {k: v.shape for k, v in one.items()}
    epoch_one = of_type(tmp_path / "one", "log")[-1]["epoch"]
    assert of_type(run_dir, "log")[-1]["epoch"] == pytest.approx(2 * epoch_one)

    # the accelerate config is in the run folder, and the exported script is launched with the same file
    written = (run_dir / ACCELERATE_CONFIG).read_text()
    assert yaml.safe_load(written)["num_processes"] == 2
    out = export_script(manager.config(run_id), run_id)
    assert out.accelerate_config == written and out.config_filename == "accelerate_ddp.yaml"
    assert out.command == "accelerate launch --config_file accelerate_ddp.yaml train_ddp.py"
    assert out.command in out.code


@pytest.mark.slow
def test_stop_ends_every_rank_at_one_step_and_a_dead_rank_ends_the_run(tiny_model, tmp_path):
    manager = TrainingManager(tmp_path / "data")
    run_id = manager.start(job(tiny_model, "ddp-stop", eval_fraction=0.0, max_steps=1000, save_steps=1,
                               probe_every=0))
    run_dir = manager.runs_dir / run_id
    wait_for(lambda: len(of_type(run_dir, "log")) >= 2)
    assert "Stopping" in manager.stop(run_id)
    final = manager.wait(run_id, timeout=120)
    assert final.state == "stopped" and final.adapter == "ddp-stop" and 2 <= final.step < 1000, final.message
    assert not processes_of(run_dir)
    steps = [e["step"] for e in of_type(run_dir, "log")]
    assert steps == list(range(1, final.step + 1)) and len(of_type(run_dir, "end")) == 1
    assert sorted(p.name for p in (tmp_path / "data" / "adapters").iterdir()) == ["ddp-stop"]  # saved once
    # both ranks reached the stopping step: each wrote its RNG state into the last checkpoint
    last = run_dir / "checkpoints" / f"checkpoint-{final.step}"
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in last.iterdir()}

    # resume on 2 ranks from that checkpoint, then kill rank 1: the run ends with a sentence, never hangs.
    # Resume refuses a stopped run (its adapter is saved): let this one end as when the app closes mid-run
    # (the worker's "interrupted" ending), read by a new manager as after an app restart.
    with pytest.raises(ValueError, match="was stopped"):
        manager.resume(run_id)
    lines = [json.loads(line) for line in (run_dir / EVENTS_FILE).read_text().splitlines()]
    lines = [{k: v for k, v in e.items() if k != "adapter"} | {"state": "interrupted"} if e["type"] == "end" else e
             for e in lines]
    (run_dir / EVENTS_FILE).write_text("".join(json.dumps(e) + "\n" for e in lines))
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    manager = TrainingManager(tmp_path / "data")
    manager.resume(run_id)
    begin = wait_for(lambda: of_type(run_dir, "train_begin")[1:])[0]
    assert begin["start_step"] == final.step
    wait_for(lambda: of_type(run_dir, "log")[-1]["step"] > final.step)
    launcher = psutil.Process(manager._procs[run_id].pid)
    rank1 = next(p for p in launcher.children(recursive=True) if p.environ().get("RANK") == "1")
    os.kill(rank1.pid, signal.SIGKILL)
    crashed = manager.wait(run_id, timeout=90)
    assert crashed.state in ("failed", "interrupted") and crashed.message.endswith(".")
    assert not processes_of(run_dir) and manager.active_run_id() is None
    json.dumps(crashed.to_dict())


def test_an_adapter_gathered_from_fsdp_wrapped_layers_saves_like_peft(tmp_path):
    """FSDP1 wraps decoder layers in place (`…layers.0._fsdp_wrapped_module.…`) while the gathered state dict
    has clean names: the adapter saved from it has the same weights and config as PEFT's own save."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from playground.train.distributed import FSDP_WRAPPER, _Gathered

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2))
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(tmp_path / "peft")
    state = {k: v.clone() for k, v in model.state_dict().items()}

    class Wrapper(torch.nn.Module):  # what FSDP1's auto-wrap puts around each decoder layer
        def __init__(self, inner):
            super().__init__()
            self.add_module(FSDP_WRAPPER, inner)

    layers = model.base_model.model.model.layers
    for i in range(len(layers)):
        layers[i] = Wrapper(layers[i])
    assert any(FSDP_WRAPPER in name for name, _ in model.named_modules())
    _Gathered(model, state).save_pretrained(str(tmp_path / "ours"), selected_adapters=["default"])
    ours, theirs = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("ours", "peft"))
    assert ours.keys() == theirs.keys() and len(ours) == 8
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert json.loads((tmp_path / "ours" / "adapter_config.json").read_text())["r"] == 4


def test_exported_script_of_a_multi_process_run_names_its_accelerate_config():
    base = BaseModelRef(name="m", source="org/model")
    ddp = export_script(TrainJobConfig(train=TrainSettings(processes=2), base=base, adapter_name="x"))
    assert ddp.command == "accelerate launch --config_file accelerate_x.yaml train_x.py"
    assert yaml.safe_load(ddp.accelerate_config)["num_processes"] == 2 and "get_peft_model_state_dict" not in ddp.code
    fsdp = export_script(TrainJobConfig(train=TrainSettings(processes=2, strategy="fsdp"), base=base))
    compile(fsdp.code, "train.py", "exec")
    assert yaml.safe_load(fsdp.accelerate_config)["distributed_type"] == "FSDP"
    assert "get_peft_model_state_dict" in fsdp.code and "trainer.accelerator.get_state_dict" in fsdp.code
    one = export_script(TrainJobConfig(base=base))
    assert one.accelerate_config == "" and one.command.startswith("accelerate launch --num_processes")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_two_cpu_processes_run_dpo_and_grpo_and_export_the_same_launch(tiny_model, tmp_path, method):
    """The preference methods go through the same launcher: one log row per step, rank 0 reports, the adapter
    is saved once, and the exported DPO/GRPO script names the run's accelerate config."""
    from playground.train.methods import MethodSettings

    sign_off = Path(__file__).resolve().parents[1] / "assets" / "datasets" / "sign_off" / "train.jsonl"
    data = (DataSource(kind="file", path=str(sign_off), max_rows=16, eval_fraction=0.0) if method == "dpo"
            else DataSource(recipe="pig-latin", max_rows=16, eval_fraction=0.0))
    cfg = dataclasses.replace(job(tiny_model, f"ddp-{method}", max_steps=2), data=data,
                              tuning=MethodSettings(method=method, num_generations=2, max_completion_length=6))
    manager = TrainingManager(tmp_path / "data")
    run_id = manager.start(cfg)
    run_dir = manager.runs_dir / run_id
    final = manager.wait(run_id, timeout=300)
    assert final.state == "completed" and final.device == "cpu ×2", final.message
    assert not processes_of(run_dir)
    assert [e["step"] for e in of_type(run_dir, "log")] == [1, 2]
    assert len(of_type(run_dir, "start")) == 1 and len(of_type(run_dir, "end")) == 1
    keys = set().union(*(e["values"] for e in of_type(run_dir, "metrics")))
    assert ({"rewards/chosen", "rewards/margins"} if method == "dpo" else {"reward", "rewards/pig_latin/mean"}) <= keys
    assert (tmp_path / "data" / "adapters" / f"ddp-{method}" / "adapter_model.safetensors").is_file()
    out = export_script(manager.config(run_id), run_id)
    assert out.accelerate_config == (run_dir / ACCELERATE_CONFIG).read_text()
    assert out.command == f"accelerate launch --config_file accelerate_ddp-{method}.yaml train_ddp-{method}.py"
    assert out.command in out.code and f"{method.upper()}Config(" in out.code
