"""Helpers and fixtures shared by the adapter / compare / evaluation tests (no tests of its own).

Adapters are made with PEFT directly: a random non-identity LoRA (`init_lora_weights=False`) on a fresh
copy of the tiny Llama, saved into the library with a CONTRACT playground.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def make_adapter(library_root: Path, name: str, base_dir: Path, *, seed: int, base_name: str,
                 fingerprint: str | None, r: int = 4, targets: tuple[str, ...] = ("q_proj", "v_proj"),
                 scale: float = 1.0, meta: bool = True) -> Path:
    """Save a random LoRA for the checkpoint in `base_dir` as `<library_root>/<name>/`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    torch.manual_seed(seed)
    peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(targets),
                                            init_lora_weights=False))
    if scale != 1.0:
        with torch.no_grad():
            for n, p in peft.named_parameters():
                if "lora_B" in n:
                    p.mul_(scale)
    folder = library_root / name
    peft.save_pretrained(folder)
    if meta:
        (folder / "playground.json").write_text(json.dumps({
            "name": name, "kind": "trained", "base_model": base_name, "base_source": str(base_dir),
            "base_fingerprint": fingerprint, "dataset": {"name": "pig-latin", "rows": 10, "sha256": "0" * 64},
            "settings": {"r": r, "lora_alpha": 2 * r, "target_modules": sorted(targets), "learning_rate": 1e-3},
            "loss_history": [{"step": s, "loss": 3.0 - 0.1 * s, "learning_rate": 1e-3, "grad_norm": 1.0}
                             for s in range(1, 11)],
            "eval_history": [{"step": 5, "eval_loss": 2.8}, {"step": 10, "eval_loss": 2.5}],
            "final_train_loss": 2.0, "final_eval_loss": 2.5, "duration_s": 1.5,
            "created_at": f"2025-01-01T00:00:{seed % 60:02d}+00:00", "run_id": f"run-{seed}"}))
    return folder


@pytest.fixture()
def manager(tiny_store, tiny_llama_dir):
    """An AdapterManager on the tiny store with two random adapters ('alpha', 'beta') in its library."""
    from playground.adapters.live import AdapterManager

    lm = tiny_store.current
    mgr = AdapterManager.for_data_dir(tiny_store, tiny_store.settings.data_dir)
    for name, seed in (("alpha", 1), ("beta", 2)):
        make_adapter(mgr.library.root, name, tiny_llama_dir, seed=seed, base_name=lm.name,
                     fingerprint=lm.fingerprint)
    return mgr


def logits_of(store, ids: list[int] | None = None) -> torch.Tensor:
    """Last-position logits of the live model for a fixed input, through the shared generation context."""
    from playground.adapters.live import generation_context

    ids_t = torch.tensor([ids or [1, 5, 9, 42, 7, 3]])
    with store.use() as lm, torch.no_grad(), generation_context(lm):
        return lm.model(input_ids=ids_t).logits[0, -1].clone()


def plain_logits(model_dir: Path, ids: list[int] | None = None) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids or [1, 5, 9, 42, 7, 3]])).logits[0, -1]
