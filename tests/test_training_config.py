"""Settings validation (before anything starts), form values -> config, API overrides, recipe defaults."""

from __future__ import annotations

import dataclasses

import pytest

from playground.data.sources import DataSource
from playground.train.config import LoraSettings, TrainJobConfig, TrainSettings, apply_overrides, precision_flags
from playground.train.form import RUN_SCALED, config_from_form, form_values, recipe_config, request_config


@pytest.mark.parametrize("lora, match", [
    (LoraSettings(r=0), "LoRA rank r must be a whole number of at least 1 \\(got 0\\)"),
    (LoraSettings(r=-4), "LoRA rank r"),
    (LoraSettings(lora_alpha=0), "LoRA alpha must be greater than 0"),
    (LoraSettings(lora_alpha=-1), "LoRA alpha"),
    (LoraSettings(lora_dropout=1.0), "LoRA dropout"),
    (LoraSettings(target_modules=[]), "at least one target module"),
])
def test_bad_lora_settings(lora, match):
    with pytest.raises(ValueError, match=match):
        TrainJobConfig(lora=lora).validate("cpu")


@pytest.mark.parametrize("train, match", [
    (TrainSettings(learning_rate=0), "Learning rate must be greater than 0"),
    (TrainSettings(learning_rate=-1e-4), "Learning rate must be greater than 0"),
    (TrainSettings(learning_rate=float("nan")), "Learning rate"),
    (TrainSettings(batch_size=0), "Batch size must be a whole number of at least 1 \\(got 0\\)"),
    (TrainSettings(epochs=0), "Epochs must be greater than 0"),
    (TrainSettings(max_steps=0), "Max steps must be a whole number of at least 1"),
    (TrainSettings(grad_accum=0), "Gradient accumulation"),
    (TrainSettings(max_seq_length=4), "at least 8 tokens"),
    (TrainSettings(probe_every=-1), "Probe every N steps"),
    (TrainSettings(optimizer="paged_adamw_8bit"), "needs a CUDA GPU"),
    (TrainSettings(lr_scheduler="zigzag"), "Scheduler must be one of"),
])
def test_bad_training_settings(train, match):
    with pytest.raises(ValueError, match=match):
        TrainJobConfig(train=train).validate("cpu")


def test_paged_optimizer_allowed_on_cuda_and_bad_adapter_names():
    TrainJobConfig(train=TrainSettings(optimizer="paged_adamw_8bit")).validate("cuda")
    for name in ("", "../evil", "a/b", "sp ace"):
        with pytest.raises(ValueError, match="adapter name"):
            TrainJobConfig(adapter_name=name).validate("cpu")


def test_to_dict_from_dict_roundtrip_ignores_unknown_keys():
    cfg = TrainJobConfig(data=DataSource(kind="file", path="/x.jsonl", columns={"prompt": "q"}),
                         lora=LoraSettings(r=8, target_modules=["q_proj", "v_proj"]),
                         train=TrainSettings(max_steps=5, quantization="4bit"), adapter_name="abc")
    d = cfg.to_dict()
    d["future_field"] = 1
    d["train"]["also_new"] = 2
    assert TrainJobConfig.from_dict(d) == cfg
    flat = cfg.flat_settings()
    assert flat["r"] == 8 and flat["target_modules"] == ["q_proj", "v_proj"] and flat["quantization"] == "4bit"
    assert flat["lora_alpha"] == 32 and flat["completion_only_loss"] is True
    # max steps ruled the run's length, so the adapter card does not list an epoch count that had no effect
    assert "epochs" not in flat and flat["max_steps"] == 5
    assert TrainJobConfig(train=TrainSettings(max_steps=None, epochs=2.0)).flat_settings()["epochs"] == 2.0


def test_form_values_roundtrip_and_empty_boxes():
    cfg = recipe_config("pig-latin")
    values = form_values(cfg)
    back = config_from_form(values)
    assert back.lora == cfg.lora and back.train == cfg.train and back.data == cfg.data
    assert back.adapter_name == "pig-latin"
    bad = dict(values, r=None)
    with pytest.raises(ValueError, match="LoRA rank r is empty"):
        config_from_form(bad)
    with pytest.raises(ValueError, match="Batch size must be a whole number"):
        config_from_form(dict(values, batch_size=2.5))
    steps = config_from_form(dict(values, length_mode="steps", max_steps=7.0))
    assert steps.train.max_steps == 7 and isinstance(steps.train.max_steps, int)
    epochs = config_from_form(dict(values, length_mode="epochs", max_steps=7))
    assert epochs.train.max_steps is None
    for empty in (None, ""):  # an emptied Max steps box is refused, not read as "train one epoch" (169 steps)
        with pytest.raises(ValueError, match="^Max steps is empty: type a number of steps, or train by epochs.$"):
            config_from_form(dict(values, length_mode="steps", max_steps=empty))
    mapped = config_from_form(dict(values, col_prompt="question", col_text=""))
    assert mapped.data.columns == {"prompt": "question"}


def test_overrides_and_api_requests():
    cfg = apply_overrides(TrainJobConfig(), {"r": 4, "learning_rate": 1e-3, "eval_fraction": 0.0, "adapter_name": "z"})
    assert (cfg.lora.r, cfg.train.learning_rate, cfg.data.eval_fraction, cfg.adapter_name) == (4, 1e-3, 0.0, "z")
    with pytest.raises(ValueError, match="Unknown setting 'rank'"):
        apply_overrides(TrainJobConfig(), {"rank": 4})
    req = request_config("pig-latin", '{"max_steps": 3}')
    assert req.train.max_steps == 3 and req.data.recipe == "pig-latin" and req.train.probe_prompt
    with pytest.raises(ValueError, match="not valid JSON"):
        request_config("pig-latin", "{oops")
    with pytest.raises(ValueError, match="Unknown recipe"):
        request_config("klingon", "{}")


def test_recipe_defaults_are_applied_and_valid():
    from playground.data.recipes import list_recipes

    for recipe in list_recipes():
        for device in ("cpu", "cuda"):
            cfg = recipe_config(recipe.id, device)
            cfg.validate(device)
            for key, value in recipe.defaults_for(device).items():
                section = next(s for s in (cfg.lora, cfg.train, cfg.data, cfg.tuning) if key in dataclasses.asdict(s))
                # eval / probe intervals scale with the run's length instead (test_training_schema.py)
                assert getattr(section, key) == (None if key in RUN_SCALED else value)


def test_the_grpo_recipe_takes_a_bigger_batch_on_a_gpu_only():
    """On an H200, 64 answers a step (8 prompts x 8) cost about the time of 16 and learnt about twice as much;
    a CPU keeps the 16 its 15 minutes allow. Everything else is the same recipe."""
    cpu, gpu = recipe_config("pig-latin-grpo", "cpu"), recipe_config("pig-latin-grpo", "cuda")
    assert (cpu.train.batch_size, gpu.train.batch_size) == (16, 64)
    assert recipe_config("pig-latin-grpo", "mps").train.batch_size == 16  # only CUDA was measured
    assert gpu.tuning.num_generations == cpu.tuning.num_generations == 8  # so 8 prompts a step instead of 2
    assert dataclasses.replace(gpu, train=cpu.train) == cpu
    assert request_config("pig-latin-grpo", '{"max_steps": 5}', "cuda").train.batch_size == 64
    assert request_config("pig-latin-grpo", '{"batch_size": 32}', "cuda").train.batch_size == 32  # overrides win
    assert recipe_config("pig-latin", "cuda") == recipe_config("pig-latin", "cpu")  # no GPU defaults


def test_precision_from_hardware():
    assert precision_flags("cpu") == {"bf16": False, "fp16": False}  # TRL's bf16=True default is ~10x slower
    assert precision_flags("mps") == {"bf16": False, "fp16": False}
    assert precision_flags("cuda", bf16_supported=True) == {"bf16": True, "fp16": False}
    assert precision_flags("cuda", bf16_supported=False) == {"bf16": False, "fp16": True}


def test_fp32_precision_turns_mixed_precision_off_on_a_gpu_too():
    assert precision_flags("cuda", bf16_supported=True, full_precision=True) == {"bf16": False, "fp16": False}
    assert precision_flags("cuda", bf16_supported=False, full_precision=True) == {"bf16": False, "fp16": False}
    assert precision_flags("cpu", full_precision=True) == {"bf16": False, "fp16": False}
    cfg = apply_overrides(TrainJobConfig(), {"precision": "fp32"})
    assert cfg.train.precision == "fp32" and TrainJobConfig().train.precision == "auto"
    with pytest.raises(ValueError, match="Unknown precision 'fp8': choose auto, fp32 or 16-bit"):
        apply_overrides(TrainJobConfig(), {"precision": "fp8"}).validate("cpu")
    # The DPO and GRPO configs built for a GPU follow it (SFT's test: test_training_export / hf_args).
    for args in gpu_args(cfg):
        assert args.bf16 is False and args.fp16 is False


def gpu_args(cfg: TrainJobConfig) -> list:
    """The DPO, GRPO and SFT configs the worker would build for `cfg` on a GPU with bf16 (fp32 ones: a CPU cannot
    build a bf16 TrainingArguments)."""
    from playground.train.dpo import dpo_config, grpo_config
    from playground.train.hf_args import sft_config

    return [dpo_config(cfg, output_dir="/tmp/x", device_type="cuda", bf16_supported=True),
            grpo_config(cfg, [1.0], output_dir="/tmp/x", device_type="cuda", bf16_supported=True),
            sft_config(cfg, "messages", output_dir="/tmp/x", device_type="cuda", bf16_supported=True)]


@pytest.mark.parametrize("precision,method,full", [
    ("auto", "sft", False), ("auto", "dpo", False), ("auto", "grpo", True),  # GRPO learnt less in bf16 (H200)
    ("fp32", "sft", True), ("fp32", "dpo", True), ("fp32", "grpo", True),
    ("16-bit", "sft", False), ("16-bit", "dpo", False), ("16-bit", "grpo", False)])
def test_auto_precision_is_fp32_for_grpo_only(precision, method, full):
    from playground.train.hf_args import runtime_kwargs

    cfg = apply_overrides(TrainJobConfig(), {"precision": precision, "method": method})
    assert cfg.full_precision is full and cfg.load_dtype == ("float32" if full else None)
    flags = runtime_kwargs(cfg, "cuda", bf16_supported=True)  # what every method's config gets on a GPU
    assert (flags["bf16"], flags["fp16"]) == (not full, False)
    assert runtime_kwargs(cfg, "cuda", bf16_supported=False)["fp16"] is not full
    if full:
        assert all(not (a.bf16 or a.fp16) for a in gpu_args(cfg))


def test_16_bit_precision_needs_a_gpu():
    from playground.train.config import precision_choices

    assert precision_choices("cuda") == ["auto", "fp32", "16-bit"]  # what the Train tab offers on each device
    assert precision_choices("cpu") == precision_choices("mps") == ["auto", "fp32"]
    cfg = apply_overrides(TrainJobConfig(), {"precision": "16-bit", "method": "grpo"})
    cfg.train.validate("cuda")
    for device in ("cpu", "mps"):
        with pytest.raises(ValueError, match=f"^Precision 16-bit \\(bf16 / fp16 mixed precision\\) needs a CUDA "
                                             f"GPU: on {device} choose auto or fp32.$"):
            cfg.train.validate(device)


def test_memory_estimate_follows_the_precision_setting():
    from transformers import LlamaConfig, LlamaForCausalLM

    from playground.train.sizing import memory_estimate

    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    auto, fp32 = TrainJobConfig(), apply_overrides(TrainJobConfig(), {"precision": "fp32"})
    gpu_auto, gpu_fp32 = memory_estimate(model, auto, "cuda"), memory_estimate(model, fp32, "cuda")
    assert gpu_fp32.total > gpu_auto.total  # 4-byte weights instead of 2
    grpo = apply_overrides(TrainJobConfig(), {"method": "grpo"})  # auto = fp32 for GRPO
    assert memory_estimate(model, grpo, "cuda").total == memory_estimate(
        model, apply_overrides(grpo, {"precision": "fp32"}), "cuda").total > memory_estimate(
        model, apply_overrides(grpo, {"precision": "16-bit"}), "cuda").total
    assert memory_estimate(model, auto, "cpu").total == gpu_fp32.total  # a CPU trains in fp32 anyway
    assert memory_estimate(model, auto, "mps").total == gpu_auto.total  # fp16 on Apple GPUs: 2 bytes like bf16


def test_memory_estimate_counts_the_lora_layers_the_settings_wrap():
    """Gradients and optimizer states follow PEFT's trainable count: LoRA on q_proj alone trains far fewer
    parameters than on every Linear layer, and the estimate must not assume all of them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from playground.train.sizing import count_trainable, memory_estimate

    model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=2))
    every, q_only = TrainJobConfig(), apply_overrides(TrainJobConfig(), {"target_modules": ["q_proj"]})
    counted = {name: count_trainable(model.config, cfg.lora)[0] for name, cfg in (("every", every), ("q", q_only))}
    assert counted["q"] == 2 * 16 * (64 + 64)  # two layers, A (r×in) + B (out×r)
    for name, cfg in (("every", every), ("q", q_only)):
        est = memory_estimate(model, cfg, "cpu", trainable=counted[name])
        assert est.trainable_params == counted[name] and est.gradients == 4 * counted[name]  # fp32 on a CPU
    assert memory_estimate(model, every, "cpu").trainable_params == counted["every"]  # the all-Linear default
