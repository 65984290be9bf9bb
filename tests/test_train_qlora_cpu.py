"""QLoRA on a CPU, with and without AVX512-BF16, on every machine.

bitsandbytes repacks 4-bit weights for CPU inference when a layer first runs in eval mode under no-grad on a CPU
with AVX512-BF16 (an evaluation or a live probe, in a training run). The packing only handles out_features
divisible by 32 and in_features divisible by 64, and packed layers pass no gradient to their input. The tests
force the flag bitsandbytes consults (`has_avx512bf16`, read when a `Linear4bit` is built) both ways, so a
machine without the feature runs the AVX512-BF16 path too; the shapes are deliberately not multiples of 32.
"""

from __future__ import annotations

import json

import pytest
import torch

from playground.data.sources import DataSource
from playground.train.bnb_cpu import PACKING_SWITCH, keep_4bit_weights_unpacked
from playground.train.config import BaseModelRef, LoraSettings, TrainJobConfig, TrainSettings
from playground.train.events import EVENTS_FILE, read_events

SHAPES = [(48, 24), (48, 80), (80, 48), (32, 32), (64, 64)]  # (in_features, out_features)


@pytest.fixture(params=[True, False], ids=["avx512bf16", "no-avx512bf16"])
def avx512bf16(request, monkeypatch) -> bool:
    """Pretend the CPU has (or lacks) AVX512-BF16 for every Linear4bit built during the test."""
    import bitsandbytes.nn.modules as bnb_modules

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: request.param)
    return request.param


def linear4bit(in_features: int, out_features: int):
    from bitsandbytes.nn import Linear4bit

    torch.manual_seed(in_features * 1000 + out_features)
    dense = torch.nn.Linear(in_features, out_features, bias=False)
    layer = Linear4bit(in_features, out_features, bias=False, quant_type="nf4", compute_dtype=torch.float32)
    layer.load_state_dict(dense.state_dict())
    return layer.to("cpu")  # quantizes


def test_forcing_the_flag_reaches_bitsandbytes_repacking(monkeypatch):
    """Canary: the flag is what bitsandbytes consults, and its repacking fails on a small layer. If a new
    bitsandbytes renames the switch, this fails and bnb_cpu.PACKING_SWITCH needs a look."""
    import bitsandbytes.nn.modules as bnb_modules

    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    layer = linear4bit(32, 32)
    assert getattr(layer, PACKING_SWITCH)
    layer.eval()
    with pytest.raises((RuntimeError, AssertionError)), torch.no_grad():
        layer(torch.randn(2, 32))


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{i}x{o}" for i, o in SHAPES])
def test_unpacked_layers_evaluate_like_they_train_and_keep_gradients(avx512bf16, shape):
    layer = linear4bit(*shape)
    assert bool(getattr(layer, PACKING_SWITCH)) is avx512bf16
    assert keep_4bit_weights_unpacked(torch.nn.Sequential(layer)) == int(avx512bf16)
    x = torch.randn(3, shape[0])
    train_out = layer(x).detach()
    layer.eval()
    with torch.no_grad():  # an evaluation / probe
        eval_out = layer(x)
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    assert torch.allclose(eval_out, train_out)
    layer.train()
    xg = x.clone().requires_grad_(True)
    layer(xg).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0  # the base layer still passes gradients down


@pytest.mark.slow
def test_qlora_job_with_evals_and_probes_on_odd_shapes(avx512bf16, smol_tokenizer_dir, tmp_path):
    from conftest import make_tiny_llama

    # head_dim 12: k/v_proj 48 -> 24; MLP 48 -> 80 -> 48: no output dimension is a multiple of 32.
    model_dir = make_tiny_llama(tmp_path / "odd-llama", smol_tokenizer_dir, hidden_size=48, intermediate_size=80,
                                num_attention_heads=4, num_key_value_heads=2)
    cfg = TrainJobConfig(data=DataSource(recipe="pig-latin", max_rows=16, eval_fraction=0.25),
                         lora=LoraSettings(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
                         train=TrainSettings(quantization="4bit", max_steps=2, batch_size=2, max_seq_length=64,
                                             warmup=0, eval_steps=1, probe_every=1, probe_max_new_tokens=3,
                                             save_steps=50),
                         base=BaseModelRef(name="odd", source=str(model_dir)), adapter_name="odd",
                         data_dir=str(tmp_path))
    from bitsandbytes.nn import Linear4bit

    from playground.train.worker import run_job

    run_dir = tmp_path / "runs" / "odd"
    result = run_job(cfg, run_dir)
    assert result.state == "completed" and result.steps == 2
    layers = [m for m in result.model.modules() if isinstance(m, Linear4bit)]
    assert layers and not any(getattr(m, PACKING_SWITCH) for m in layers)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False) for m in layers)
    events = read_events(run_dir / EVENTS_FILE)[0]
    assert [e["step"] for e in events if e["type"] == "eval"] == [1, 2]
    assert [e["step"] for e in events if e["type"] == "probe"] == [0, 1, 2]
    meta = json.loads((result.adapter_dir / "playground.json").read_text())
    assert meta["settings"]["quantization"] == "4bit" and len(meta["loss_history"]) == 2
