"""Training never runs cuDNN's attention on a GPU (its bf16 backward can return NaN, see
playground/train/cuda_attention.py): the switch itself, that the worker uses it, and that exported scripts carry
it. The GPU repro of the kernel bug lives in tests/test_cuda.py."""

from __future__ import annotations

import pytest
import torch

from playground.train import cuda_attention
from playground.train.worker import run_job
from tests.test_training_job import job


@pytest.fixture
def cudnn_attention_restored():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


def test_the_switch_turns_cudnn_attention_off_on_cuda_only(cudnn_attention_restored):
    torch.backends.cuda.enable_cudnn_sdp(True)
    assert cuda_attention.keep_attention_gradients_finite("cpu") is False
    assert cuda_attention.keep_attention_gradients_finite("mps") is False
    assert torch.backends.cuda.cudnn_sdp_enabled()  # a CPU / MPS run leaves the process as it was
    assert cuda_attention.keep_attention_gradients_finite("cuda") is True
    assert not torch.backends.cuda.cudnn_sdp_enabled()


def test_the_worker_applies_it_for_the_device_it_trains_on(tiny_llama_dir, tmp_path, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(cuda_attention, "keep_attention_gradients_finite", seen.append)
    result = run_job(job(tiny_llama_dir, tmp_path, name="attn", max_steps=1, probe_every=0), tmp_path / "runs" / "a")
    assert result.state == "completed"
    assert seen == ["cpu"]  # once, with the loaded model's device, before the trainer is built


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
def test_exported_scripts_switch_it_off_on_a_gpu_before_training(method, tiny_llama_dir, tmp_path):
    from playground.train.export import export_script
    from tests.test_train_methods_run import job as method_job

    code = export_script(method_job(tiny_llama_dir, tmp_path, method, "x")).code
    compile(code, "train.py", "exec")
    switch = "    if torch.cuda.is_available():\n"
    assert code.count("torch.backends.cuda.enable_cudnn_sdp(False)") == 1
    at = code.index("torch.backends.cuda.enable_cudnn_sdp(False)")
    assert code.rindex(switch, 0, at) > code.index("def main():")  # inside main(), on CUDA only
    assert at < code.index("Trainer(", code.index("def main():"))  # before any trainer is built
