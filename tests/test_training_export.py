"""Export as script: the generated file is standalone and actually trains (2 steps on a tiny model)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from playground.data.sources import DataSource
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings
from playground.train.export import export_script


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "4bit"])  # QLoRA scripts run on a CPU too
def test_exported_script_trains_two_steps_and_saves_an_adapter(tiny_llama_dir, tmp_path, quantization):
    from peft import PeftConfig

    rows = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(12)]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainJobConfig(
        data=DataSource(kind="file", path=str(data), format="prompt_completion",
                        columns={"prompt": "question", "completion": "answer"}, eval_fraction=0.25),
        lora=LoraSettings(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        train=TrainSettings(max_steps=2, batch_size=2, max_seq_length=64, eval_steps=1, save_steps=100,
                            quantization=quantization),
        base=BaseModelRef(name="tiny", source=str(tiny_llama_dir)), adapter_name="exported")
    out = export_script(cfg, run_id="20250101-000000-exported")
    assert out.filename == "train_exported.py"
    assert out.command == "accelerate launch --num_processes 2 train_exported.py"
    assert "import playground" not in out.code and "from playground" not in out.code
    assert "bf16=use_bf16" in out.code and "r=4," in out.code and "'question'" in out.code
    assert ("load_in_4bit=True" in out.code) == (quantization == "4bit")
    script = tmp_path / out.filename
    script.write_text(out.code)
    adapter = tmp_path / "adapter-out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(script), "--output-dir", str(adapter)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (adapter / "adapter_model.safetensors").is_file()
    peft_cfg = PeftConfig.from_pretrained(str(adapter))
    assert peft_cfg.r == 4 and set(peft_cfg.target_modules) == {"q_proj", "v_proj"}
    state = json.loads(next((adapter / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["global_step"] == 2 and any("eval_loss" in h for h in state["log_history"])


def test_exported_script_keeps_the_runs_precision():
    full = "use_bf16 = use_fp16 = False"
    mixed = "use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()"
    for method in ("sft", "grpo"):  # DPO's script shares the head (test_train_methods_run exports one)
        cfg = TrainJobConfig(base=BaseModelRef(name="m", source="org/model"))
        cfg = dataclasses.replace(cfg, tuning=dataclasses.replace(cfg.tuning, method=method))
        code = {p: export_script(dataclasses.replace(cfg, train=TrainSettings(precision=p))).code
                for p in ("auto", "fp32", "16-bit")}
        for text in code.values():
            compile(text, "train.py", "exec")
        assert full in code["fp32"] and "is_bf16_supported" not in code["fp32"]
        assert "bf16=use_bf16" in code["fp32"] and "dtype=dtype" in code["fp32"]
        assert mixed in code["16-bit"] and full not in code["16-bit"]
        # auto: the worker's rule (TrainJobConfig.full_precision), fp32 for GRPO only, saying why
        assert (full if method == "grpo" else mixed) in code["auto"]
        assert ("Precision auto for GRPO, which learnt less in bf16" in code["auto"]) is (method == "grpo")


def test_exported_script_for_qlora_and_messages_recipe():
    cfg = TrainJobConfig(train=TrainSettings(quantization="4bit"), base=BaseModelRef(name="m", source="org/model"))
    code = export_script(cfg).code
    compile(code, "train.py", "exec")
    from playground.model.quant import quant_kwargs  # what the app and the worker load with

    assert call_kwargs(code, "BitsAndBytesConfig") == {**quant_kwargs("4bit"), "bnb_4bit_compute_dtype": "dtype"}
    assert quant_kwargs("4bit")["bnb_4bit_use_double_quant"] is True
    assert "prepare_model_for_kbit_training" in code and 'messages[:-1], "completion": messages[-1:]' in code
    assert "pig_latin/train.jsonl" in code and "BASE_MODEL = 'org/model'" in code


# ---------------------------------------------------------------- the script builds what the worker builds

RUNTIME = {"output_dir": "cli.output_dir + '/checkpoints'", "max_steps": "cli.max_steps", "bf16": "use_bf16",
           "fp16": "use_fp16", "use_cpu": "not torch.cuda.is_available()"}  # decided when the script runs
WORKER_ONLY = {"output_dir", "disable_tqdm", "dataloader_pin_memory", "use_cpu", "bf16", "fp16"}


def call_kwargs(code: str, name: str) -> dict:
    """Keyword arguments of the script's call to `name`: literals as values, other expressions as source."""
    import ast

    call = next(n for n in ast.walk(ast.parse(code))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name)
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            out[kw.arg] = ast.unparse(kw.value)
    return out


def max_steps_default(code: str) -> int:
    import re

    return int(re.search(r'"--max-steps", type=int, default=(-?\d+)', code).group(1))


@pytest.mark.parametrize("cfg", [
    TrainJobConfig(),
    TrainJobConfig(lora=LoraSettings(r=8, lora_dropout=0.1, use_rslora=True, target_modules=["q_proj", "v_proj"]),
                   train=TrainSettings(quantization="4bit", max_steps=15, probe_every=3, eval_steps=5, warmup=2)),
    TrainJobConfig(data=DataSource(eval_fraction=0.0, completion_only_loss=False),
                   train=TrainSettings(epochs=2.5, packing=True, gradient_checkpointing=True)),
], ids=["defaults", "qlora-steps", "epochs-no-eval"])
def test_exported_kwargs_are_the_shared_mapping(cfg):
    from playground.train.hf_args import lora_kwargs, sft_kwargs

    cfg = dataclasses.replace(cfg, base=BaseModelRef(name="m", source="org/model"))
    code = export_script(cfg).code
    assert call_kwargs(code, "LoraConfig") == lora_kwargs(cfg.lora)
    expected = sft_kwargs(cfg, "messages")  # the bundled pig-latin recipe is chat messages
    exported = call_kwargs(code, "SFTConfig")
    assert {k: exported.pop(k) for k in RUNTIME} == RUNTIME
    assert max_steps_default(code) == expected.pop("max_steps")
    assert exported == expected


@pytest.mark.slow
def test_exported_script_matches_what_the_worker_ran(tiny_llama_dir, tmp_path, monkeypatch):
    import peft
    import trl

    from playground.train.worker import run_job

    ran: dict[str, dict] = {}
    real_sft, real_lora = trl.SFTConfig, peft.LoraConfig

    def record(name, cls):
        def build(*args, **kwargs):
            ran[name] = dict(kwargs)
            return cls(*args, **kwargs)
        return build

    monkeypatch.setattr(trl, "SFTConfig", record("sft", real_sft))
    monkeypatch.setattr(peft, "LoraConfig", record("lora", real_lora))
    cfg = TrainJobConfig(data=DataSource(recipe="pig-latin", max_rows=16, eval_fraction=0.25),
                         lora=LoraSettings(r=4, lora_alpha=8, lora_dropout=0.1, use_rslora=True,
                                           target_modules=["q_proj", "v_proj"]),
                         train=TrainSettings(max_steps=1, batch_size=2, max_seq_length=64, probe_every=0),
                         base=BaseModelRef(name="tiny", source=str(tiny_llama_dir)), adapter_name="same",
                         data_dir=str(tmp_path))
    assert run_job(cfg, tmp_path / "runs" / "same").state == "completed"
    code = export_script(cfg).code
    assert call_kwargs(code, "LoraConfig") == ran["lora"]
    exported = call_kwargs(code, "SFTConfig")
    for key in RUNTIME:
        exported.pop(key)
    worker = {k: v for k, v in ran["sft"].items() if k not in WORKER_ONLY}
    assert max_steps_default(code) == worker.pop("max_steps")
    assert exported == worker
