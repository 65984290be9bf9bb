"""Export as script: the generated file is standalone and actually trains (2 steps on a tiny model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from playground.train.export import export_script
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings
from playground.data.sources import DataSource


@pytest.mark.slow
def test_exported_script_trains_two_steps_and_saves_an_adapter(tiny_llama_dir, tmp_path):
    from peft import PeftConfig

    rows = [{"question": f"What is {i}+{i}?", "answer": str(2 * i)} for i in range(12)]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainJobConfig(
        data=DataSource(kind="file", path=str(data), format="prompt_completion",
                        columns={"prompt": "question", "completion": "answer"}, eval_fraction=0.25),
        lora=LoraSettings(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        train=TrainSettings(max_steps=2, batch_size=2, max_seq_length=64, eval_steps=1, save_steps=100),
        base=BaseModelRef(name="tiny", source=str(tiny_llama_dir)), adapter_name="exported")
    out = export_script(cfg, run_id="20250101-000000-exported")
    assert out.filename == "train_exported.py"
    assert out.command == "accelerate launch --num_processes 2 train_exported.py"
    assert "import playground" not in out.code and "from playground" not in out.code
    assert "bf16=use_bf16" in out.code and "r=4," in out.code and "'question'" in out.code
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


def test_exported_script_for_qlora_and_messages_recipe():
    cfg = TrainJobConfig(train=TrainSettings(quantization="4bit"), base=BaseModelRef(name="m", source="org/model"))
    code = export_script(cfg).code
    compile(code, "train.py", "exec")
    assert "load_in_4bit=True" in code and "bnb_4bit_use_double_quant=True" in code
    assert "prepare_model_for_kbit_training" in code and 'messages[:-1], "completion": messages[-1:]' in code
    assert "pig_latin/train.jsonl" in code and "BASE_MODEL = 'org/model'" in code
