"""The CUDA paths: bf16 loading, bitsandbytes 4-bit / 8-bit on the GPU, QLoRA training with a paged 8-bit
optimizer, bf16 LoRA training, decode parity. Skipped where torch sees no CUDA GPU (CI is CPU-only); run on a
GPU machine with `python -m pytest tests/test_cuda.py`."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from playground.decode.sampling import SamplingSettings, analyze, generate_kwargs, next_logits
from playground.decode.session import encode_prompt
from playground.model.store import LoadSettings, load_model
from playground.train.events import EVENTS_FILE, read_events
from playground.train.worker import run_job
from tests.test_training_job import job

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_default_device_is_cuda_with_bf16(tiny_llama_dir, tmp_path):
    lm = load_model(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path))
    param = next(lm.model.parameters())
    assert lm.device.type == "cuda" and param.device.type == "cuda"
    assert param.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_bitsandbytes_load_on_cuda(tiny_llama_dir, tmp_path, quantization):
    import bitsandbytes as bnb

    lm = load_model(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path, quantization=quantization))
    layer = lm.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt)
    assert layer.weight.device.type == "cuda"
    if quantization == "4bit":
        assert layer.weight.quant_state.quant_type == "nf4" and layer.weight.quant_state.nested  # double quant
    ids = lm.tokenizer("Hello", return_tensors="pt").to("cuda")
    assert torch.isfinite(lm.model(**ids).logits).all()


def test_decode_probabilities_equal_generate_scores_on_cuda(tiny_llama_dir, tmp_path):
    lm = load_model(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path))
    settings = SamplingSettings(temperature=0.7, top_k=20, top_p=0.9, min_p=0.02, repetition_penalty=1.3)
    ids = list(encode_prompt(lm.tokenizer, "The rain in Spain falls mainly in the", False, 400).ids)
    d = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings)
    input_ids = torch.tensor([ids], device="cuda")
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=1,
                            output_scores=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
    assert (out.scores[0][0].float().softmax(-1).cpu() - d.final_probs.float().cpu()).abs().max() < 1e-3


def _train_and_check(tiny_llama_dir, tmp_path, name: str, **train) -> dict:
    run_dir = tmp_path / "runs" / name
    result = run_job(job(tiny_llama_dir, tmp_path, name=name, **train), run_dir)
    assert result.state == "completed" and result.steps == 3
    lora = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in lora.items())
    events = read_events(run_dir / EVENTS_FILE)[0]
    setup = next(e for e in events if e["type"] == "setup")
    logs = [e for e in events if e["type"] == "log"]
    assert setup["device"] == "cuda" and len(logs) == 3
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in logs)
    assert logs[-1]["peak_mem_mb"] > 0  # torch.cuda.max_memory_allocated, not the process RSS
    return {"result": result, "setup": setup, "meta": json.loads((result.adapter_dir / "playground.json").read_text())}


def test_qlora_4bit_with_paged_8bit_adamw_trains_on_cuda(tiny_llama_dir, tmp_path):
    out = _train_and_check(tiny_llama_dir, tmp_path, "qlora-cuda", quantization="4bit",
                           optimizer="paged_adamw_8bit", gradient_checkpointing=True)
    base = out["result"].model.get_base_model()
    assert type(base.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    assert out["meta"]["settings"]["optimizer"] == "paged_adamw_8bit"


def test_bf16_lora_trains_on_cuda_with_mixed_precision(tiny_llama_dir, tmp_path):
    out = _train_and_check(tiny_llama_dir, tmp_path, "bf16-cuda")
    assert out["setup"]["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    lora_params = [p for n, p in out["result"].model.named_parameters() if "lora_" in n]
    assert lora_params and all(p.device.type == "cuda" for p in lora_params)


def test_fp32_precision_trains_on_cuda_in_full_precision(tiny_llama_dir, tmp_path):
    out = _train_and_check(tiny_llama_dir, tmp_path, "fp32-cuda", precision="fp32")
    assert out["setup"]["precision"] == "fp32" and out["meta"]["settings"]["precision"] == "fp32"
    assert next(out["result"].model.get_base_model().parameters()).dtype == torch.float32


@pytest.mark.parametrize("precision,expected", [("auto", "fp32"), ("16-bit", "bf16")])
def test_grpo_trains_in_fp32_by_default_on_cuda(tiny_llama_dir, tmp_path, precision, expected):
    """auto is fp32 for GRPO (TrainJobConfig.full_precision: it learnt less in bf16 on an H200); 16-bit keeps bf16."""
    import dataclasses

    from tests.test_train_methods_run import job as method_job

    if expected == "bf16" and not torch.cuda.is_bf16_supported():
        expected = "fp16"
    cfg = method_job(tiny_llama_dir, tmp_path, "grpo", f"grpo-{precision}", num_generations=2, max_completion_length=6)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision))
    run_dir = tmp_path / "runs" / precision
    result = run_job(cfg, run_dir)
    assert result.state == "completed" and result.steps == 2
    setup = next(e for e in read_events(run_dir / EVENTS_FILE)[0] if e["type"] == "setup")
    assert setup["device"] == "cuda" and setup["precision"] == expected
    dtype = next(result.model.get_base_model().parameters()).dtype
    assert dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[expected]


def test_training_attention_keeps_gradients_finite_where_cudnn_attention_returns_nan():
    """The worker's switch (playground/train/cuda_attention.py) against the cuDNN bug it avoids: a padding-style
    mask, a length of 64 past a multiple of 128 and very negative scores make cuDNN's bf16 backward return NaN
    in the query gradient on Hopper GPUs (pytorch/pytorch#196678). Flash / memory-efficient attention stay finite."""
    import torch.nn.functional as F

    from playground.train.cuda_attention import keep_attention_gradients_finite

    before = torch.backends.cuda.cudnn_sdp_enabled()
    try:
        assert keep_attention_gradients_finite("cuda") and not torch.backends.cuda.cudnn_sdp_enabled()
        length, dim = 192, 64
        gen = torch.Generator(device="cuda").manual_seed(0)
        q, k = (0.1 * torch.randn(1, 2, length, dim, device="cuda", dtype=torch.bfloat16, generator=gen)
                for _ in range(2))
        v = torch.randn(1, 2, length, dim, device="cuda", dtype=torch.bfloat16, generator=gen)
        q[..., 0], k[..., 0] = 1.0, -120 * dim ** 0.5  # every score ~ -120: logsumexp far below ln(FLT_MAX)
        for t in (q, k, v):
            t.requires_grad_()
        mask = torch.ones(length, length, dtype=torch.bool, device="cuda").tril()[None, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out.backward(torch.randn_like(out))
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
