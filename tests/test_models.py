"""Model loading: sources, families, device/dtype, quantization, error messages, the GGUF cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from playground.model.gguf import convert_gguf, gguf_cache_dir
from playground.model.sources import (
    BUNDLED_NAME,
    ModelLoadError,
    bundled_gguf_path,
    pick_device,
    pick_dtype,
    resolve_source,
)
from playground.model.store import LoadSettings, ModelStore, load_model
from tests.conftest import TINY_FAMILIES

V = 49152  # the SmolLM2 tokenizer's vocab, shared by every tiny model below

FAMILIES = TINY_FAMILIES


def _save_family(family: str, out: Path, tokenizer_dir: Path) -> Path:
    import transformers

    cls_name, kwargs = FAMILIES[family]
    config = getattr(transformers, cls_name)(vocab_size=V, **kwargs)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(out)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_loads_through_the_same_path(family, tmp_path, smol_tokenizer_dir):
    from playground.model.inspect import layer_type_table, model_facts
    from playground.model.memory import MemoryEstimateConfig, estimate_memory, model_shape

    src = _save_family(family, tmp_path / family, smol_tokenizer_dir)
    lm = load_model(LoadSettings(source=str(src), data_dir=tmp_path / "data"))
    assert lm.model.config.model_type == family
    assert lm.dtype == torch.float32 and lm.device.type == "cpu"
    facts = model_facts(lm.model, lm.name)
    assert facts.vocab_size == V and facts.num_layers == 2 and facts.hidden_size == 32
    kinds = {row[0] for row in layer_type_table(lm.model)}
    assert {"Embedding", "Linear"} <= kinds
    # A forward pass and one generated token work on every family.
    ids = lm.tokenizer("Hello world", return_tensors="pt")
    out = lm.model.generate(**ids, max_new_tokens=2, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 2
    est = estimate_memory(model_shape(lm.model), MemoryEstimateConfig(method="lora", lora_rank=4))
    assert est.trainable_params > 0 and est.total > 0


def test_resolve_source_kinds(tmp_path, tiny_llama_dir):
    assert resolve_source("bundled").kind == "gguf"
    assert resolve_source("bundled").name == BUNDLED_NAME
    assert resolve_source(str(tiny_llama_dir)).kind == "dir"
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_source(str(tmp_path))
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_source(str(tmp_path / "nope" / "deeper"))
    with pytest.raises(ModelLoadError, match="not a file"):
        resolve_source(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="No model given"):
        resolve_source("   ")


def test_device_and_dtype_rules():
    cpu = torch.device("cpu")
    assert pick_device(None).type in ("cpu", "cuda", "mps")
    assert pick_dtype(cpu) == torch.float32  # bf16 on a CPU trains ~10x slower
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            pick_device("cuda")


def test_offline_hub_id_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not available offline: .*Pass a local path"):
        load_model(LoadSettings(source="someone/not-cached-model-xyz", data_dir=tmp_path))


def test_non_causal_model_is_refused(tmp_path, smol_tokenizer_dir):
    from transformers import DistilBertConfig, DistilBertModel

    DistilBertModel(DistilBertConfig(vocab_size=V, dim=32, n_layers=1, n_heads=2,
                                     hidden_dim=64)).save_pretrained(tmp_path / "bert")
    AutoTokenizer.from_pretrained(smol_tokenizer_dir).save_pretrained(tmp_path / "bert")
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        load_model(LoadSettings(source=str(tmp_path / "bert"), data_dir=tmp_path))


def test_pickle_only_checkpoint_is_refused(tmp_path, tiny_llama_dir):
    import shutil

    from safetensors.torch import load_file

    ckpt = tmp_path / "pickled"
    shutil.copytree(tiny_llama_dir, ckpt)
    state = load_file(ckpt / "model.safetensors")
    (ckpt / "model.safetensors").unlink()
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(LoadSettings(source=str(ckpt), data_dir=tmp_path))


def test_failed_switch_keeps_previous_model(tiny_store, tmp_path):
    before = tiny_store.current
    rev = tiny_store.revision
    with pytest.raises(ModelLoadError):
        tiny_store.load(LoadSettings(source=str(tmp_path / "missing.gguf"), data_dir=tmp_path))
    assert tiny_store.current is before and tiny_store.revision == rev


def test_store_header_and_set_model(tiny_store):
    assert "adapter:** `base (no adapter)`" in tiny_store.header_markdown()
    rev = tiny_store.revision
    with tiny_store.use() as lm:
        tiny_store.set_model(lm.model, "my-adapter")
    assert tiny_store.revision == rev + 1
    assert "`my-adapter`" in tiny_store.header_markdown()
    assert "No model loaded" in ModelStore(LoadSettings()).header_markdown()


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_bitsandbytes_quantized_load_on_cpu(tiny_llama_dir, tmp_path, quantization):
    import bitsandbytes as bnb

    lm = load_model(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path, quantization=quantization))
    layer = lm.model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit if quantization == "4bit" else bnb.nn.Linear8bitLt)
    if quantization == "4bit":
        assert layer.weight.quant_state.quant_type == "nf4"
    ids = lm.tokenizer("Hello", return_tensors="pt")
    logits = lm.model(**ids).logits
    assert torch.isfinite(logits).all()


# ---------------------------------------------------------------- the real bundled model

@pytest.mark.slow
def test_bundled_model_answers_paris_and_uses_the_cache(bundled_store):
    lm = bundled_store.current
    assert lm.name == BUNDLED_NAME
    assert sum(p.numel() for p in lm.model.parameters()) == 134_515_008
    # The cache is a plain checkpoint: no gguf/quantization left in its config.
    cfg = json.loads((lm.checkpoint_dir / "config.json").read_text())
    assert "quantization_config" not in cfg
    assert lm.checkpoint_dir == gguf_cache_dir(bundled_gguf_path(), bundled_store.settings.data_dir)
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = lm.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    out = lm.model.generate(**ids, max_new_tokens=16, do_sample=False)
    answer = lm.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
    # Loading again reads the cache (no conversion).
    again = load_model(bundled_store.settings)
    assert again.from_cache is True
    assert again.fingerprint == lm.fingerprint


@pytest.mark.slow
def test_gguf_conversion_is_atomic_and_cached(tmp_path, monkeypatch):
    """First convert writes the cache through a temp dir; the second call is a cache hit."""
    gguf = bundled_gguf_path()
    calls = []
    target, cached = convert_gguf(gguf, tmp_path, progress=calls.append)
    assert cached is False and (target / "model.safetensors").is_file()
    assert any("first run only" in c for c in calls)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".convert-")]
    target2, cached2 = convert_gguf(gguf, tmp_path)
    assert target2 == target and cached2 is True


def test_fingerprint_ignores_dtype_but_tells_weights_apart(tiny_llama_dir, smol_tokenizer_dir, tmp_path):
    """An adapter trained in fp32 on a CPU must be accepted on the same base loaded in bf16/fp16 on a GPU."""
    from conftest import make_tiny_llama
    from transformers import AutoModelForCausalLM

    from playground.model.store import fingerprint_model

    prints = {dtype: fingerprint_model(AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=dtype))
              for dtype in (torch.float32, torch.bfloat16, torch.float16)}
    assert len(set(prints.values())) == 1
    other = make_tiny_llama(tmp_path / "other", smol_tokenizer_dir, seed=1)
    assert fingerprint_model(AutoModelForCausalLM.from_pretrained(other)) != prints[torch.float32]


def test_relative_paths_resolve_to_absolute_ones(tmp_path, tiny_llama_dir, monkeypatch):
    """Training workers run with the repository as their cwd, so a relative path must not reach them."""
    monkeypatch.chdir(tiny_llama_dir.parent)
    resolved = resolve_source(f"./{tiny_llama_dir.name}")
    assert resolved.kind == "dir" and Path(resolved.path).is_absolute()
    assert Path(resolved.path) == tiny_llama_dir.resolve() and resolved.name == tiny_llama_dir.name


def test_a_weights_file_asks_for_its_folder(tiny_llama_dir):
    weights = next(tiny_llama_dir.glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match="pass the folder that holds config.json"):
        resolve_source(str(weights))
