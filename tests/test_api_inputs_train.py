"""What API callers sent to /adapter_mix, /adapter_activate, /train_start, /train_status, /train_stop and
/train_resume that crashed or did harm: each is now refused with a sentence naming the field (never
{"error": null}, a traceback or an adapter of inf/NaN tensors)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_adapters_fixtures import make_adapter, manager  # noqa: F401

from playground.adapters.library import AdapterError
from playground.adapters.live import name_argument
from playground.adapters.mixing import MIX_WEIGHT_MAX, MIX_WEIGHT_MIN, MixSpec
from playground.train.config import LoraSettings, TrainJobConfig
from playground.train.form import request_config
from playground.train.manager import TrainingManager
from playground.train.worker import explain_error

OOM = ("Out of memory while training. Lower the batch size or the max sequence length, turn on gradient "
       "checkpointing, or use 4-bit quantization (QLoRA).")


def exactly(sentence: str) -> str:
    return f"^{re.escape(sentence)}$"


# ------------------------------------------------------------ /adapter_mix: weights


def test_the_mix_sliders_span_the_checked_range():
    assert (MIX_WEIGHT_MIN, MIX_WEIGHT_MAX) == (-1.0, 2.0)


@pytest.mark.parametrize("weights, sentence", [
    ((1, 1e308), "Every mix weight must be between -1 and 2 (got 1e+308)."),
    ((2.5, -3), "Every mix weight must be between -1 and 2 (got 2.5, -3)."),
    ((1, 10**400), "Every mix weight must be a number."),  # was OverflowError: {"error": null}
    ((True, 1), "Every mix weight must be a number."),  # JSON true is not the weight 1
])
def test_mix_weights_outside_the_slider_range_are_refused_and_nothing_is_saved(manager, weights, sentence):
    with pytest.raises(AdapterError, match=exactly(sentence)):
        manager.mix(MixSpec(("alpha", "beta"), weights, "m1", "cat"))
    assert manager.library.names() == ["beta", "alpha"] and not manager.library.folder("m1").exists()


def test_mix_weights_at_the_range_ends_are_fine(manager):
    spec = MixSpec(("alpha", "beta"), (2, -1), "ends", "cat").checked(manager.library)
    assert spec.weights == (2.0, -1.0)


def test_a_mix_of_non_finite_tensors_is_refused_and_leaves_nothing_behind(manager, tiny_llama_dir):
    lm = manager.store.current
    folder = make_adapter(manager.library.root, "huge", tiny_llama_dir, seed=5, base_name=lm.name,
                          fingerprint=lm.fingerprint)
    weights = folder / "adapter_model.safetensors"
    tensors = {k: torch.full_like(t, 3e38) if "lora_B" in k else t for k, t in load_file(weights).items()}
    save_file(tensors, weights)  # finite, but linear's sqrt(2) * 3e38 overflows float32
    # 2 layers x (q_proj, v_proj) x (lora_A, lora_B): every lora_B overflows.
    sentence = ("Mixing alpha + huge with weights 1, 2 gives inf or NaN values in 4 of 8 tensors, so nothing was "
                "saved. Check the source adapters' weights, or mix with smaller weights.")
    with pytest.raises(AdapterError, match=exactly(sentence)):
        manager.mix(MixSpec(("alpha", "huge"), (1.0, 2.0), "m-inf", "linear"))
    assert not manager.library.folder("m-inf").exists() and "m-inf" not in manager.library.names()
    loaded = {slot.key for slot in manager._loaded.values()}  # alpha and huge, no half-made mix
    assert len(loaded) == 2 and set(manager.store.current.model.peft_config) == loaded
    assert manager.store.current.active_adapter is None


# ------------------------------------------------------------ /adapter_mix, /adapter_activate: wrong types


@pytest.mark.parametrize("args, sentence", [
    ((None, [1, 1], "m"), 'names must be a list of adapter names, e.g. ["a1", "a2"] (got None).'),
    (("a1", [1, 1], "m"), 'names must be a list of adapter names, e.g. ["a1", "a2"] (got \'a1\').'),
    (([1, 2], [1, 1], "m"), 'names must be a list of adapter names, e.g. ["a1", "a2"] (got [1, 2]).'),
    ((["a1", "a2"], None, "m"), "weights must be a list of numbers, one per adapter (got None)."),
    ((["a1", "a2"], 5, "m"), "weights must be a list of numbers, one per adapter (got 5)."),
    ((["a1", "a2"], [1, 1], 5), "new_name must be text (got 5)."),
])
def test_mix_request_of_wrong_types_is_a_sentence_naming_the_parameter(args, sentence):
    with pytest.raises(AdapterError, match=exactly(sentence)):
        MixSpec.request(*args)


def test_mix_request_of_right_types_builds_the_spec():
    spec = MixSpec.request(["a1", "a2"], [1, 0.5], "m", "cat")
    assert spec == MixSpec(("a1", "a2"), (1, 0.5), "m", "cat")
    assert MixSpec.request(("a1", "a2"), (1, 1), None).new_name == ""


@pytest.mark.parametrize("name, sentence", [
    (5, "name must be an adapter's name as text (got 5)."),
    (["a1"], "name must be an adapter's name as text (got ['a1'])."),
])
def test_activating_a_non_text_name_is_a_sentence(manager, name, sentence):
    with pytest.raises(AdapterError, match=exactly(sentence)):
        manager.set_active(name)
    with pytest.raises(AdapterError, match=exactly(sentence)):
        name_argument(name)  # the /adapter_delete wrapper's check
    assert manager.store.current.active_adapter is None
    assert name_argument(None) is None and name_argument("alpha") == "alpha"


# ------------------------------------------------------------ /train_start: LoRA rank, numbers, settings_json


def test_lora_rank_has_a_declared_upper_bound():
    cfg = request_config("", json.dumps({"r": 1_000_000_000}))
    with pytest.raises(ValueError, match=exactly("LoRA rank r must be at most 1024 (got 1000000000).")):
        cfg.validate("cpu")
    request_config("", json.dumps({"r": 1024})).validate("cpu")  # the bound itself is fine


def test_a_rank_above_the_models_hidden_size_is_refused_before_any_process(tiny_store, tmp_path):
    trainer = TrainingManager(tmp_path / "data", tiny_store)
    hidden, name = tiny_store.current.base_model.config.hidden_size, tiny_store.current.name
    with pytest.raises(ValueError, match=exactly(f"LoRA rank r must be at most {hidden}, the hidden size of {name} "
                                                 f"(got {hidden + 1}).")):
        trainer.start(TrainJobConfig(lora=LoraSettings(r=hidden + 1)))
    assert trainer.list_runs() == []


def test_an_allocation_failure_in_the_worker_reads_as_out_of_memory():
    err = RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: you "
                       "tried to allocate 2147483648000 bytes. Error code 12 (Cannot allocate memory)")
    assert explain_error(err) == OOM
    assert explain_error(RuntimeError("DefaultCPUAllocator: not enough memory")) == OOM
    assert explain_error(RuntimeError("shape mismatch")) == "Training failed: RuntimeError: shape mismatch"


@pytest.mark.parametrize("overrides, sentence", [
    ({"max_steps": True}, "Max steps must be a number (got True)."),
    ({"learning_rate": False}, "Learning rate must be a number (got False)."),
    ({"max_steps": 10**400}, f"Max steps must be a number (got {10**400})."),
    ({"learning_rate": 10**400}, f"Learning rate must be a number (got {10**400})."),
])
def test_booleans_and_huge_integers_for_number_fields_are_a_sentence(overrides, sentence):
    with pytest.raises(ValueError, match=exactly(sentence)):
        request_config("", json.dumps(overrides))


def test_a_huge_integer_set_directly_fails_the_range_check_with_a_sentence():
    with pytest.raises(ValueError, match=exactly(f"LoRA rank r must be at most 1024 (got {10**400}).")):
        LoraSettings(r=10**400).validate()


def test_settings_json_may_be_the_object_itself():
    assert request_config("", {"max_steps": 3, "r": 8}).train.max_steps == 3
    assert request_config("", {"max_steps": 3, "r": 8}).lora.r == 8
    assert request_config("", None).train == TrainJobConfig().train


@pytest.mark.parametrize("settings_json, sentence", [
    (5, "settings_json must be a JSON object of setting names to values (got 5)."),
    (["x"], "settings_json must be a JSON object of setting names to values (got ['x'])."),
    ("[1]", "settings_json must be a JSON object of setting names to values (got [1])."),
])
def test_settings_json_of_another_type_is_a_sentence(settings_json, sentence):
    with pytest.raises(ValueError, match=exactly(sentence)):
        request_config("", settings_json)


# ------------------------------------------------------------ /train_status, /train_stop, /train_resume: run ids


@pytest.mark.parametrize("run_id, sentence", [
    (5, "Unknown run 5: a run id is text, as /train_start returns it."),
    (["x"], "Unknown run ['x']: a run id is text, as /train_start returns it."),
    ("x" * 5000, f"Unknown run {'x' * 40!r}… (a run id has at most 120 characters)."),  # was OSError
])
def test_a_run_id_that_cannot_be_a_run_is_unknown(tmp_path, run_id, sentence):
    trainer = TrainingManager(tmp_path / "data")
    for op in (trainer.status, trainer.stop, trainer.resume, trainer.config):
        with pytest.raises(ValueError, match=exactly(sentence)):
            op(run_id)
