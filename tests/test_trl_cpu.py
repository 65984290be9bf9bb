"""TRL's fused LM head on a CPU: scoring only the labelled positions gives the same loss and gradients."""

from __future__ import annotations

import pytest
import torch
import trl.trainer.utils as trl_utils

from playground.train.trl_cpu import score_only_labelled_positions_on_cpu


def _loss_and_grads(model_dir, calls: list[int]) -> tuple[float, dict[str, torch.Tensor]]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    torch.manual_seed(0)  # the same random LoRA weights and inputs for both runs
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM",
                                             init_lora_weights=False))  # non-zero B: every LoRA weight gets a gradient
    ids = torch.randint(0, 1000, (2, 12))
    labels = ids.clone()
    labels[:, :7] = -100  # a prompt: no loss on the first 7 tokens
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, fused_lm_head=True)
    loss = -out.log_probs.sum() / (labels[:, 1:] != -100).sum()
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_compact_scoring_on_cpu_matches_full_scoring(tiny_llama_dir, monkeypatch):
    # Another test in this process may have switched already (a training run in-process): start from TRL's own.
    original = getattr(trl_utils._use_triton, "_playground_original", trl_utils._use_triton)
    monkeypatch.setattr(trl_utils, "_use_triton", original)  # restored after the test
    rows: list[int] = []
    apply = trl_utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *a: rows.append(hidden.shape[0]) or apply(hidden, *a))

    full_loss, full_grads = _loss_and_grads(tiny_llama_dir, rows)
    assert rows == [2 * 11]  # every shifted position of both rows is projected through the LM head
    assert score_only_labelled_positions_on_cpu() is True
    assert score_only_labelled_positions_on_cpu() is True  # idempotent: no double wrapping
    rows.clear()
    compact_loss, compact_grads = _loss_and_grads(tiny_llama_dir, rows)
    assert rows == [2 * 5]  # only the 5 answer positions of each row

    assert compact_loss == pytest.approx(full_loss, rel=1e-6)
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, grad in full_grads.items():
        assert torch.allclose(grad, compact_grads[name], atol=1e-6, rtol=1e-4), name
    # The GPU decision is untouched.
    assert trl_utils._use_triton(torch.device("cpu")) is True
    assert trl_utils._use_triton(torch.device("meta")) is original(torch.device("meta"))
