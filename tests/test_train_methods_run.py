"""DPO and GRPO runs on a tiny random Llama (2 steps each), starting from an adapter, the exported DPO / GRPO
scripts, and the held-out preference evaluation."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground.data.sources import DataSource
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings
from playground.train.events import EVENTS_FILE, read_events
from playground.train.methods import MethodSettings
from playground.train.worker import run_job

pytestmark = pytest.mark.slow  # each test trains a tiny model for a couple of steps
SIGN_OFF_TRAIN = Path(__file__).resolve().parents[1] / "assets" / "datasets" / "sign_off" / "train.jsonl"
DPO_KEYS = {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}


def job(model_dir: Path, data_dir: Path, method: str, name: str, **tuning) -> TrainJobConfig:
    data = (DataSource(kind="file", path=str(SIGN_OFF_TRAIN), max_rows=12, eval_fraction=0.25) if method == "dpo"
            else DataSource(recipe="pig-latin", max_rows=12, eval_fraction=0.25))
    return TrainJobConfig(
        data=data, lora=LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
        train=TrainSettings(max_steps=2, batch_size=4, learning_rate=5e-3, warmup=0, eval_steps=1, probe_every=1,
                            probe_max_new_tokens=4, save_steps=50),
        base=BaseModelRef(name="tiny-llama", source=str(model_dir), fingerprint="fp-tiny"), adapter_name=name,
        data_dir=str(data_dir), tuning=MethodSettings(method=method, **tuning))


def events(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir / EVENTS_FILE)[0] if e["type"] == kind]


def test_dpo_two_steps_write_reward_events_and_an_adapter(tiny_llama_dir, tmp_path):
    run_dir = tmp_path / "runs" / "dpo"
    result = run_job(job(tiny_llama_dir, tmp_path, "dpo", "tiny-dpo", beta=0.2), run_dir)
    assert result.state == "completed" and result.steps == 2
    assert (tmp_path / "adapters" / "tiny-dpo" / "adapter_model.safetensors").is_file()
    meta = json.loads((tmp_path / "adapters" / "tiny-dpo" / "playground.json").read_text())
    assert meta["settings"]["method"] == "dpo" and meta["settings"]["beta"] == 0.2
    train = [e for e in events(run_dir, "metrics") if e["mode"] == "train"]
    assert [e["step"] for e in train] == [1, 2] and all(DPO_KEYS <= set(e["values"]) for e in train)
    assert any(e["mode"] == "eval" for e in events(run_dir, "metrics"))  # eval rewards at eval steps
    method = events(run_dir, "method")[0]
    assert method["method"] == "dpo" and method["reference"] == "the base model (adapter off)"
    assert events(run_dir, "setup")[0]["format"] == "preference"


def test_grpo_two_steps_with_the_pig_latin_rule(tiny_llama_dir, tmp_path):
    run_dir = tmp_path / "runs" / "grpo"
    cfg = job(tiny_llama_dir, tmp_path, "grpo", "tiny-grpo", num_generations=2, max_completion_length=6,
              sample_every=1, reward_length=0.5, length_target=3)
    result = run_job(cfg, run_dir)
    assert result.state == "completed" and result.steps == 2
    assert (tmp_path / "adapters" / "tiny-grpo" / "adapter_model.safetensors").is_file()
    train = events(run_dir, "metrics")
    assert [e["step"] for e in train] == [1, 2]
    for e in train:
        assert {"reward", "reward_std", "rewards/pig_latin/mean", "rewards/length/mean", "kl",
                "completions/mean_length", "entropy", "frac_reward_zero_std"} <= set(e["values"])
        assert 0 <= e["values"]["frac_reward_zero_std"] <= 1 and e["values"]["entropy"] >= 0  # the third chart row
    samples = events(run_dir, "samples")
    assert samples and samples[0]["samples"][0]["prompt"].startswith("Translate to Pig Latin:")
    assert set(samples[0]["samples"][0]["parts"]) == {"pig_latin", "length"}
    assert events(run_dir, "method")[0]["rewards"] == "1 × pig_latin + 0.5 × length"


def test_every_offered_dpo_loss_passes_trls_checks(tiny_llama_dir, tmp_path):
    """TRL refuses some losses' settings in DPOTrainer (exo_pair needs label smoothing): each loss of the form
    builds the worker's trainer, and exo_pair trains to a finite loss."""
    import math

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from playground.train.dpo import dpo_config
    from playground.train.hf_args import lora_config
    from playground.train.methods import DPO_LOSSES

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    pairs = Dataset.from_list([{"prompt": "Hi?", "chosen": "Hello there!", "rejected": "Go."}] * 4)
    refused = {}
    for loss in DPO_LOSSES:
        cfg = job(tiny_llama_dir, tmp_path, "dpo", "losses", loss_type=loss)
        try:
            trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_llama_dir),
                                 args=dpo_config(cfg, output_dir=str(tmp_path / loss), device_type="cpu"),
                                 train_dataset=pairs, eval_dataset=pairs, processing_class=tok,
                                 peft_config=lora_config(cfg.lora))
        except (ValueError, NotImplementedError) as err:
            refused[loss] = str(err)
            continue
        if loss == "exo_pair":
            trainer.args.max_steps = 1
            assert math.isfinite(trainer.train().training_loss)
    assert refused == {}


def test_dpo_continues_an_adapter_against_its_frozen_copy(tiny_llama_dir, tmp_path):
    from playground.train.manager import TrainingManager

    first = run_job(job(tiny_llama_dir, tmp_path, "sft", "start-here"), tmp_path / "runs" / "sft")
    assert first.state == "completed"
    run_dir = tmp_path / "runs" / "dpo-on"
    cfg = job(tiny_llama_dir, tmp_path, "dpo", "continued", start_adapter="start-here")
    cfg = dataclasses.replace(cfg, lora=LoraSettings(r=8, target_modules=["all-linear"]))  # ignored: continued
    result = run_job(cfg, run_dir)
    assert result.state == "completed"
    assert events(run_dir, "method")[0]["reference"] == "the starting adapter start-here (frozen copy)"
    assert "ref" in result.model.peft_config  # TRL's own reference adapter, a copy of the starting weights
    saved = json.loads((tmp_path / "adapters" / "continued" / "adapter_config.json").read_text())
    meta = json.loads((tmp_path / "adapters" / "continued" / "playground.json").read_text())
    assert saved["r"] == 4 and meta["settings"]["r"] == 4  # the starting adapter's shape, recorded as such
    assert meta["settings"]["target_modules"] == ["q_proj", "v_proj"] and meta["settings"]["start_adapter"]
    manager = TrainingManager(tmp_path)
    missing = job(tiny_llama_dir, tmp_path, "dpo", "x", start_adapter="nope")
    with pytest.raises(ValueError, match="there is no adapter 'nope' in the library"):
        manager.check(missing)
    other_base = dataclasses.replace(missing, tuning=MethodSettings(method="dpo", start_adapter="start-here"),
                                     base=BaseModelRef(name="other", source=str(tiny_llama_dir), fingerprint="fp-2"))
    with pytest.raises(ValueError, match="not on the loaded base model"):
        manager.check(other_base)


@pytest.mark.parametrize("method,quantization", [("dpo", "none"), ("grpo", "none"), ("dpo", "4bit")])
def test_exported_script_runs_two_steps(tiny_llama_dir, tmp_path, method, quantization):
    from playground.train.export import export_script

    cfg = job(tiny_llama_dir, tmp_path, method, f"exported-{method}", num_generations=2, max_completion_length=6,
              reward_regex=0.5, regex="ay")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, quantization=quantization))
    out = export_script(cfg, run_id="r1")
    assert "import playground" not in out.code and "from playground" not in out.code
    qlora = ["load_in_4bit=True", "prepare_model_for_kbit_training(model", "bitsandbytes"]
    assert all((q in out.code) == (quantization == "4bit") for q in qlora)  # the base loads as the worker's did
    assert ("DPOConfig(" in out.code) if method == "dpo" else ("reward_funcs=[pig_latin, pattern]" in out.code)
    script = tmp_path / out.filename
    script.write_text(out.code)
    adapter = tmp_path / f"out-{method}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, str(script), "--output-dir", str(adapter)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (adapter / "adapter_model.safetensors").is_file()
    state = json.loads(next((adapter / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["global_step"] == 2
    keys = set().union(*state["log_history"])
    assert (DPO_KEYS if method == "dpo" else {"reward", "rewards/pig_latin/mean", "rewards/pattern/mean"}) <= keys


def test_exported_kwargs_are_the_workers(tiny_llama_dir, tmp_path):
    from test_training_export import call_kwargs

    from playground.train.dpo import dpo_kwargs, grpo_kwargs
    from playground.train.export import export_script

    cfg = job(tiny_llama_dir, tmp_path, "dpo", "kw", sft_weight=0.5, loss_type="ipo")
    exported = call_kwargs(export_script(cfg).code, "DPOConfig")
    expected = {k: v for k, v in dpo_kwargs(cfg).items() if k != "max_steps"}
    assert {k: exported[k] for k in expected} == expected
    assert expected["loss_type"] == ["ipo", "sft"] and expected["loss_weights"] == [1.0, 0.5]
    cfg = job(tiny_llama_dir, tmp_path, "grpo", "kw", num_generations=2, reward_length=0.5)
    exported = call_kwargs(export_script(cfg).code, "GRPOConfig")
    expected = {k: v for k, v in grpo_kwargs(cfg, [1.0, 0.5]).items() if k != "max_steps"}
    assert {k: exported[k] for k in expected} == expected


def test_held_out_preference_accuracy_and_win_rate(tiny_store, tiny_llama_dir, tmp_path):
    from playground.adapters.live import AdapterManager
    from playground.compare.preference_eval import PreferenceEvalRequest, evaluate_preferences

    data_dir = tiny_store.settings.data_dir
    cfg = dataclasses.replace(job(tiny_llama_dir, data_dir, "dpo", "pref"), base=dataclasses.replace(
        job(tiny_llama_dir, data_dir, "dpo", "pref").base, fingerprint=tiny_store.current.fingerprint))
    assert run_job(cfg, tmp_path / "run").state == "completed"
    adapters = AdapterManager.for_data_dir(tiny_store, data_dir)
    result = evaluate_preferences(adapters, PreferenceEvalRequest("sign-off", adapter="pref", max_rows=6,
                                                                  batch_size=3, max_new_tokens=4))
    assert result.rows == 6 and result.reference is None and result.rule
    for value in (result.tuned_pref_acc, result.base_prefers_chosen, result.tuned_prefers_chosen,
                  result.base_win_rate, result.tuned_win_rate):
        assert 0.0 <= value <= 1.0
    assert len(result.tuned_answers) == 6 and result.as_api()["answers"][0]["prompt"]
    headers, rows = result.table()
    assert len(rows) == 2 and "preference accuracy" in headers[1]


def test_held_out_reward_of_a_grpo_adapter(tiny_store, tiny_llama_dir, tmp_path):
    from playground.adapters.live import AdapterManager
    from playground.compare.reward_eval import RewardEvalRequest, evaluate_rewards
    from playground.data.reward_rules import pig_latin_shape

    data_dir = tiny_store.settings.data_dir
    cfg = job(tiny_llama_dir, data_dir, "grpo", "rl", num_generations=2, max_completion_length=4, reward_length=1,
              length_target=2)
    cfg = dataclasses.replace(cfg, base=dataclasses.replace(cfg.base, fingerprint=tiny_store.current.fingerprint))
    assert run_job(cfg, tmp_path / "run").state == "completed"
    adapters = AdapterManager.for_data_dir(tiny_store, data_dir)

    def sampled(adapter: str | None = "rl", **kw):
        return evaluate_rewards(adapters, RewardEvalRequest("pig-latin", adapter, max_rows=4, batch_size=2,
                                                            max_new_tokens=4, **kw))

    result = sampled()
    assert [m.label for m in result.models] == ["base", "tuned"] and result.rules == "1 × pig_latin + 1 × length"
    for m in result.models:
        assert set(m.per_rule) == {"pig_latin", "length"} and 0 <= m.reward <= 2 and len(m.answers) == 4
    import torch

    torch.manual_seed(123)
    one = sampled(samples=3)
    torch.manual_seed(456)  # the draws come from the evaluation's own seed, not the process's RNG state
    again, other = sampled(samples=3), sampled(samples=3, seed=1)
    assert one.samples == 3 and one.temperature == 1.0  # the run's temperature (MethodSettings' default)
    tuned = one.by_label("tuned")
    assert len(tuned.sampled_answers) == 4 and all(len(a) == 3 for a in tuned.sampled_answers)
    assert 0 <= tuned.sampled_reward <= 2 and set(tuned.sampled_per_rule) == {"pig_latin", "length"}
    assert tuned.sampled_answers == again.by_label("tuned").sampled_answers  # seeded: repeatable
    assert tuned.sampled_answers != other.by_label("tuned").sampled_answers  # another seed, other draws
    assert one.by_label("base").sampled_answers == again.by_label("base").sampled_answers
    assert one.as_api()["models"][1]["sampled_reward"] == tuned.sampled_reward
    # Near-zero temperature samples the most likely token: the greedy answers, scored the same way.
    cold = sampled(samples=2, temperature=1e-4).by_label("tuned")
    assert [a[0] for a in cold.sampled_answers] == cold.answers and cold.sampled_reward == pytest.approx(cold.reward)
    assert result.by_label("tuned").sampled_reward is None and result.as_api()["samples"] == 0  # greedy only
    headers, rows = result.table()
    assert headers == ["model", "adapter", "greedy reward ↑", "pig_latin", "right word count", "aligned", "length"]
    assert len(rows) == 2 and rows[1][6] == round(result.by_label("tuned").per_rule["length"], 4)
    greedy = result.by_label("tuned")  # the greedy answers' shape, from the answers themselves
    shapes = [pig_latin_shape(p, a) for p, a in zip(result.prompts, greedy.answers)]
    assert rows[1][4:6] == [round(sum(same for same, _ in shapes) / 4, 4), round(sum(a for _, a in shapes) / 4, 4)]
    assert result.as_api()["models"][1]["pig_latin_shape"] == {"word_count_share": greedy.shape.word_count_share,
                                                               "aligned": greedy.shape.aligned}
    assert rows[1][:3] == ["tuned", "rl", round(result.by_label("tuned").reward, 4)]
    assert one.table()[0][3] == "sampled reward ↑ (3 a prompt, T 1)" and one.table()[1][1][3] == round(
        tuned.sampled_reward, 4)
    first = result.answer_rows()[0]  # prompt · base · start · tuned; the run started from no adapter
    assert first == [result.prompts[0], result.models[0].answers[0], "—", result.models[1].answers[0]]
    with pytest.raises(ValueError, match="samples"):
        sampled(samples=65)
    with pytest.raises(ValueError, match="temperature"):
        sampled(samples=2, temperature=3)
    with pytest.raises(ValueError, match="No adapter to evaluate"):
        sampled(None)  # none given and none active
    assert run_job(job(tiny_llama_dir, data_dir, "dpo", "not-rl"), tmp_path / "run2").state == "completed"
    with pytest.raises(ValueError, match="records no GRPO rewards"):
        sampled("not-rl")
