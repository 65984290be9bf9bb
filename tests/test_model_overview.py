"""The Model tab describes the base model's own anatomy, even with PEFT adapters loaded into it (issue: after
activating adapters it showed 149.2M parameters, lora_A/lora_B rows, and the estimator counted them)."""

from __future__ import annotations

import pytest
from test_adapters_fixtures import make_adapter, manager  # noqa: F401

from playground.adapters.mixing import MixSpec
from playground.model.anatomy import adapter_parameter_counts, base_view
from playground.model.inspect import linear_layer_names
from playground.model.memory import MemoryEstimateConfig
from playground.model.overview import adapters_markdown, memory_config, memory_report, model_overview

CFG = MemoryEstimateConfig(batch_size=2, seq_len=64, method="lora", lora_rank=16)


def _describe(store):
    with store.use() as lm:
        return model_overview(lm), memory_report(lm.model, CFG)[0], linear_layer_names(lm.model)


def test_overview_and_estimate_ignore_loaded_adapters(manager):
    store = manager.store
    before = _describe(store)
    assert "lora" not in before[0].architecture
    manager.activate("alpha")
    manager.activate("beta")
    manager.mix(MixSpec(("alpha", "beta"), (1.0, 1.0), "both", "cat"))
    with_adapters = _describe(store)
    assert with_adapters == before  # every number, row and line of print(model)
    assert not any("lora" in str(row[2]) or "base_layer" in str(row[2]) for row in with_adapters[0].layers)
    manager.deactivate()  # base only keeps the PEFT wrapper (layers switched off): still the base's anatomy
    assert _describe(store) == before
    assert store.current.model.__class__.__name__.startswith("Peft")  # the wrapper really is there


def test_loaded_adapters_get_their_own_line_with_their_parameter_count(manager):
    assert manager.loaded_sizes() == []
    assert "none" in adapters_markdown([])
    manager.activate("alpha")
    manager.activate("beta")
    # r=4 on q_proj (32→32) and v_proj (32→16) in 2 layers: 2 · 4 · ((32 + 32) + (32 + 16)) = 896
    assert manager.loaded_sizes() == [("alpha", 896, False), ("beta", 896, True)]
    with manager.store.use() as lm:
        lora = sum(p.numel() for n, p in lm.model.named_parameters() if "lora_" in n)
        assert sum(adapter_parameter_counts(lm.model).values()) == lora == 2 * 896
    line = adapters_markdown(manager.loaded_sizes())
    assert "**alpha**: 896 parameters" in line and "**beta** (active): 896 parameters" in line
    assert "not counted in the base model's numbers" in line


def test_base_view_is_the_model_itself_without_peft(tiny_store):
    model = tiny_store.current.model
    assert base_view(model) is model


@pytest.mark.parametrize("values, field", [((0, 512, "bf16", "lora", 16, "adamw_32bit", False, "sdpa"), "batch_size"),
                                           ((4, None, "bf16", "lora", 16, "adamw_32bit", False, "sdpa"), "seq_len")])
def test_memory_config_names_the_bad_field(values, field):
    with pytest.raises(ValueError, match=field):
        memory_config(*values)


@pytest.mark.slow
def test_bundled_model_with_three_adapters_is_still_134_5m(bundled_checkpoint, tmp_path):
    """The issue's numbers on the real model: 134.5M parameters and 4,884,480 LoRA r16 trainable parameters
    before and after three adapters are loaded (the bug showed 149.2M and 19,860,480)."""
    from playground.adapters.live import AdapterManager
    from playground.model.store import LoadSettings, ModelStore

    store = ModelStore(LoadSettings(source=str(bundled_checkpoint), data_dir=tmp_path))
    store.load()
    mgr = AdapterManager.for_data_dir(store, tmp_path)
    lm = store.current
    cfg = MemoryEstimateConfig()  # the tab's defaults: LoRA rank 16
    with store.use():
        facts_before, est_before = model_overview(lm).facts, memory_report(lm.model, cfg)[0]
    assert est_before.trainable_params == 4_884_480
    for i, name in enumerate(("pg-a", "pg-b", "pg-c")):
        make_adapter(mgr.library.root, name, bundled_checkpoint, seed=i, base_name=lm.name,
                     fingerprint=lm.fingerprint, r=16, targets=("q_proj", "k_proj", "v_proj", "o_proj"))
        mgr.activate(name)
    with store.use():
        overview, est = model_overview(store.current), memory_report(store.current.model, cfg)[0]
    assert overview.summary.endswith("**134.5M** parameters") and overview.facts == facts_before
    assert est.trainable_params == 4_884_480 and est == est_before
    assert [n for n, _, _ in mgr.loaded_sizes()] == ["pg-a", "pg-b", "pg-c"]


def test_memory_footprint_counts_the_pre_packed_bf16_copies(tiny_llama_dir, tmp_path):
    """On the bf16 CPU path every Linear also keeps a oneDNN pre-packed copy of its weight (model/cpu_speed.py):
    `get_memory_footprint` alone left those bytes out."""
    import torch

    from playground.model import cpu_speed
    from playground.model.inspect import format_bytes
    from playground.model.store import LoadSettings, ModelStore

    if not cpu_speed._onednn_bf16():
        pytest.skip("this torch/CPU has no oneDNN bf16")
    store = ModelStore(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path / "data", dtype="bfloat16"))
    lm = store.load()
    assert lm.cpu_packed > 0
    linears = [m for m in lm.model.modules() if isinstance(m, torch.nn.Linear)]
    extra = sum(m.weight.numel() * m.weight.element_size() for m in linears)  # one packed copy per packed weight
    facts = dict(model_overview(lm).facts)
    weights = lm.model.get_memory_footprint()
    assert facts["Memory footprint"].startswith(format_bytes(weights + extra))
    assert "pre-packed copies" in facts["Memory footprint"]
