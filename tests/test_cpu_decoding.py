"""Fast CPU decoding: the dtype choice (bf16 only on CPUs with native bf16), pre-packed bf16 weights that give
the same numbers as F.linear, attention in fp32 for bf16 CPU models, and the decode parity tests again in bf16,
the dtype the app runs in there.

Runs on any CPU: detection is forced on or off where a test needs it; a tiny bf16 model runs (slowly, but it
is tiny) where bf16 is emulated, and the packed path is skipped where oneDNN has no bf16 at all.

Why the bf16 parity tolerance is the fp32 one (1e-6): the app and generate() run the same bf16 kernels on the
same tokens, so their logits are equal bit for bit; everything after the logits (penalty, temperature,
filters, softmax) runs in fp32 in both. bf16 rounding (8 mantissa bits) changes what the model outputs, not
whether the app shows what generate() samples from. Only a cached step against a fresh full forward (a
different split of the same sums) differs by bf16 rounding, so that comparison gets 2^-7 of slack.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import BUNDLED_DATA_DIR

# The decode parity tests, collected again here, where `tiny_store` is the bf16 model below.
from test_decoding import (  # noqa: F401
    test_final_probabilities_equal_generate_output_scores,
    test_greedy_matches_generate_argmax,
)
from test_decoding_sweep import (  # noqa: F401
    test_all_twelve_knobs_on_in_generate_order,
    test_every_sampler_equals_generate_output_scores_randomised,
)
from test_decoding_stream import test_stream_equals_generate_with_the_same_seed  # noqa: F401

import app
from playground.decode.sampling import SamplingSettings, analyze, generate_kwargs, greedy_token, next_logits
from playground.decode.session import DecodeService, StepState, chosen_from_distribution, encode_prompt
from playground.decode.stream import GenerateRequest, generate_all
from playground.model import cpu_speed, sources
from playground.model.store import LoadSettings, ModelStore, load_model

CPU = torch.device("cpu")
needs_onednn_bf16 = pytest.mark.skipif(not cpu_speed._onednn_bf16(), reason="this torch/CPU has no oneDNN bf16")
def _bf16_store(source, data_dir) -> ModelStore:
    store = ModelStore(LoadSettings(source=str(source), data_dir=data_dir, dtype="bfloat16"))
    store.load()
    assert store.current.dtype == torch.bfloat16
    return store


@pytest.fixture(scope="module")
def tiny_store(tiny32_dir, tmp_path_factory):
    """Overrides conftest's: the parity tests imported above run on a bf16 model (packed where oneDNN can),
    loaded once for this module (they only read it)."""
    return _bf16_store(tiny32_dir, tmp_path_factory.mktemp("bf16-data"))


# ---------------------------------------------------------------- choosing the dtype

def test_cpu_flags_name_native_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_speed, "_onednn_bf16", lambda: True)
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n")
    assert "avx512_bf16" in cpu_speed.cpu_flags(info)
    assert cpu_speed.native_bf16_cpu(cpu_speed.cpu_flags(info), "x86_64")
    assert cpu_speed.native_bf16_cpu(frozenset({"amx_bf16", "amx_tile"}), "x86_64")
    # AVX-512 without bf16 (oneDNN emulates it there, ~10x slower): no
    assert not cpu_speed.native_bf16_cpu(frozenset({"avx512f", "avx512bw", "avx512vl"}), "x86_64")
    assert cpu_speed.native_bf16_cpu(frozenset({"fp", "asimd", "bf16"}), "aarch64")
    assert not cpu_speed.native_bf16_cpu(frozenset({"fp", "asimd"}), "aarch64")
    assert not cpu_speed.native_bf16_cpu(frozenset({"avx512_bf16"}), "riscv64")
    assert cpu_speed.cpu_flags(tmp_path / "missing") == frozenset()
    monkeypatch.setattr(cpu_speed, "_onednn_bf16", lambda: False)  # the flag alone is not enough
    assert not cpu_speed.native_bf16_cpu(frozenset({"avx512_bf16"}), "x86_64")


def test_auto_is_fp32_on_a_cpu_without_native_bf16(monkeypatch, tiny32_dir, tmp_path):
    monkeypatch.setattr(sources, "native_bf16_cpu_cached", lambda: False)
    assert sources.pick_dtype(CPU, "auto") == torch.float32
    lm = load_model(LoadSettings(source=str(tiny32_dir), data_dir=tmp_path, dtype="auto"))
    assert lm.dtype == torch.float32 and lm.cpu_packed == 0
    assert next(lm.model.parameters()).dtype == torch.float32


def test_auto_is_bf16_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(sources, "native_bf16_cpu_cached", lambda: True)
    assert sources.pick_dtype(CPU, "auto") == torch.bfloat16
    assert sources.pick_dtype(CPU) == torch.float32  # None, what training and scripts load: fp32 on a CPU
    assert sources.pick_dtype(CPU, "float32") == torch.float32  # --dtype overrides
    assert sources.pick_dtype(CPU, "float16") == torch.float16
    with pytest.raises(sources.ModelLoadError, match="Unknown dtype"):
        sources.pick_dtype(CPU, "int3")


def test_training_loads_fp32_on_a_cpu_even_with_native_bf16(monkeypatch, tiny32_dir, tmp_path):
    """The worker keeps its own precision: LoadSettings without a dtype, whatever the app runs in."""
    from playground.train.config import BaseModelRef, TrainJobConfig
    from playground.train.worker import _load_base

    monkeypatch.setattr(sources, "native_bf16_cpu_cached", lambda: True)
    assert LoadSettings().dtype is None
    config = TrainJobConfig(base=BaseModelRef(source=str(tiny32_dir), device="cpu"), data_dir=str(tmp_path))
    loaded = _load_base(config)
    assert loaded.dtype == torch.float32 and loaded.cpu_packed == 0


def test_fp32_precision_loads_the_training_copy_in_fp32(monkeypatch, tmp_path):
    """Precision fp32 (and auto with GRPO) asks the loader for float32 (on a GPU, where None would give bf16);
    auto with SFT and 16-bit ask for None."""
    from playground.model import store
    from playground.train.config import TrainJobConfig, apply_overrides
    from playground.train.worker import _load_base

    asked = []
    monkeypatch.setattr(store, "load_model", lambda settings: asked.append(settings.dtype) or object())
    for precision, method in (("fp32", "sft"), ("auto", "sft"), ("auto", "grpo"), ("16-bit", "grpo")):
        _load_base(apply_overrides(TrainJobConfig(data_dir=str(tmp_path)), {"precision": precision, "method": method}))
    assert asked == ["float32", None, "float32", None]


def test_dtype_flag_reaches_the_load_settings():
    assert app.parse_args([]).dtype == "auto"
    assert app.parse_args(["--dtype", "float32"]).dtype == "float32"
    with pytest.raises(SystemExit):
        app.parse_args(["--dtype", "fp8"])


def test_one_torch_thread_on_a_two_cpu_machine():
    assert cpu_speed.app_threads(2) == 1 and cpu_speed.app_threads(1) == 1
    assert cpu_speed.app_threads(8) is None and cpu_speed.app_threads(None) is None  # torch's own choice
    assert app.parse_args(["--threads", "3"]).threads == 3
    with pytest.raises(SystemExit):
        app.parse_args(["--threads", "0"])


def test_4bit_keeps_its_compute_dtype_under_auto(monkeypatch):
    """auto with bitsandbytes stays on the dtype the quantized path was measured with (fp32 on a CPU)."""
    seen = {}
    monkeypatch.setattr(sources, "native_bf16_cpu_cached", lambda: True)
    import playground.model.store as store_mod

    def fake_pick(device, choice=None):
        seen["choice"] = choice
        raise sources.ModelLoadError("stop here")

    monkeypatch.setattr(store_mod, "pick_dtype", fake_pick)
    with pytest.raises(sources.ModelLoadError):
        load_model(LoadSettings(source="bundled", quantization="4bit", dtype="auto"))
    assert seen["choice"] is None


# ---------------------------------------------------------------- packed weights

@needs_onednn_bf16
def test_packed_weights_give_the_same_logits_bit_for_bit(tiny32_dir, tmp_path):
    packed = load_model(LoadSettings(source=str(tiny32_dir), data_dir=tmp_path, dtype="bfloat16"))
    assert packed.cpu_packed == cpu_speed.packed_layers(packed.model) > 0
    plain = copy.deepcopy(packed.model)  # the copy packs for itself on first use…
    assert cpu_speed.unpack_linear_weights(plain) == packed.cpu_packed  # …unless unpacked: plain F.linear
    ids = encode_prompt(packed.tokenizer, "The rain in Spain falls mainly in the", False, 400).ids
    a, past_a = next_logits(packed.model, ids, CPU)
    b, past_b = next_logits(plain, ids, CPU)
    assert torch.equal(a, b)
    a, _ = next_logits(packed.model, (42,), CPU, past_a)  # a cached step: one row through each layer
    b, _ = next_logits(plain, (42,), CPU, past_b)
    assert torch.equal(a, b)


@needs_onednn_bf16
def test_packed_forward_falls_back_and_repacks():
    layer = torch.nn.Linear(64, 96).to(torch.bfloat16)
    forward = cpu_speed.PackedForward(layer)
    layer.forward = forward
    x = torch.randn(2, 64).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
        layer.weight.mul_(2)  # an in-place change: packed again before the next product
        assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))
    out = layer(x)  # grad on: plain F.linear, so autograd works
    out.sum().backward()
    assert layer.weight.grad is not None
    with torch.no_grad(), pytest.raises(RuntimeError, match="dtype"):  # another dtype: F.linear's own error
        layer(x.float())


@needs_onednn_bf16
def test_lora_on_packed_weights_equals_lora_on_plain(tiny32_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    packed = load_model(LoadSettings(source=str(tiny32_dir), data_dir=tmp_path, dtype="bfloat16")).model
    plain = copy.deepcopy(packed)
    cpu_speed.unpack_linear_weights(plain)
    # q and v of a fused q/k/v group, and gate of a gate/up group (cpu_fused): PEFT wraps the members alone
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj"], init_lora_weights=False)
    torch.manual_seed(0)
    a = get_peft_model(packed, config)
    torch.manual_seed(0)
    b = get_peft_model(plain, config)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)
        with a.disable_adapter():  # the adapter matters: equal above is not equal by default
            assert not torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)


def test_bf16_cpu_attention_runs_in_fp32_and_the_inside_tab_can_still_switch(tiny32_dir, tmp_path):
    from playground.inside.attention import attn_implementation, eager_attention

    model = _bf16_store(tiny32_dir, tmp_path).current.model  # its own copy: this test switches attention
    assert attn_implementation(model) == cpu_speed.FP32_ATTENTION
    ids = torch.tensor([[1, 5, 9, 42, 7, 3]])
    with torch.inference_mode():
        mine = model(input_ids=ids).logits
        with eager_attention(model) as impl:  # the Inside tab's attention maps
            assert impl == "eager"
            model(input_ids=ids, output_attentions=True)
        assert attn_implementation(model) == cpu_speed.FP32_ATTENTION  # restored
        assert torch.equal(model(input_ids=ids).logits, mine)
        model.set_attn_implementation("sdpa")  # torch's bf16 kernel: close, not equal (rounding inside)
        assert (model(input_ids=ids).logits.float() - mine.float()).abs().max() < 0.1


def test_nothing_is_packed_off_the_bf16_cpu_path(tiny_llama_dir, tmp_path):
    lm = load_model(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path, dtype="float32"))
    assert lm.cpu_packed == 0 and cpu_speed.pack_linear_weights(lm.model) == 0  # fp32: MKL's own path
    assert lm.model.config._attn_implementation == "sdpa"


# ---------------------------------------------------------------- bf16 step-through parity

def test_bf16_step_through_shows_what_generate_samples_from_at_every_step(tiny_store):
    """Greedy step-through on the KV cache vs generate()'s own scores at each of its cached steps."""
    lm = tiny_store.current
    svc = DecodeService(tiny_store)
    settings = SamplingSettings(temperature=0.0, repetition_penalty=1.3)
    state = StepState(prompt=svc.encode("Once upon a time, there was", False))
    input_ids = torch.tensor([list(state.ids)])
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=5,
                            output_scores=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
    for step, scores in enumerate(out.scores):
        dist = svc.distribution(state.ids, settings, state.session_id)
        assert (scores[0].softmax(-1) - dist.scaled_probs).abs().max() < 1e-6
        token = greedy_token(dist)
        assert token == int(out.sequences[0, input_ids.shape[1] + step])
        state = state.append(chosen_from_distribution(dist, lm.tokenizer, token, "greedy"))
    fresh = next_logits(lm.model, state.ids, lm.device)[0].softmax(-1)  # a different split of the sums
    assert (svc.logits(state.ids, state.session_id).softmax(-1) - fresh).abs().max() < 2 ** -7


# ---------------------------------------------------------------- the real model, as the app loads it

@pytest.mark.slow
def test_bundled_model_in_the_apps_dtype_matches_generate():
    store = ModelStore(LoadSettings(data_dir=BUNDLED_DATA_DIR, dtype="auto"))
    lm = store.load()
    if lm.dtype == torch.float32:
        pytest.skip("no native bf16 here: the app runs fp32, covered by the fp32 parity tests")
    settings = SamplingSettings(temperature=0.8, top_k=40, top_p=0.92, min_p=0.03, repetition_penalty=1.1)
    ids = encode_prompt(lm.tokenizer, "The capital of France is", True, 4000).ids
    shown = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings).final_probs
    input_ids = torch.tensor([list(ids)])
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                            output_scores=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
    assert (out.scores[0][0].softmax(-1) - shown).abs().max() < 1e-6
    ids = encode_prompt(lm.tokenizer, "The capital of France is", False, 4000).ids  # plain text: " Paris."
    input_ids = torch.tensor([list(ids)])
    tokens = generate_all(store, GenerateRequest(ids, SamplingSettings(temperature=0), 8, 0))
    torch.manual_seed(0)
    bare = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=8,
                             pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(SamplingSettings(temperature=0)))
    assert [t.token_id for t in tokens] == bare[0, len(ids):].tolist()
    assert "Paris" in lm.tokenizer.decode([t.token_id for t in tokens])
