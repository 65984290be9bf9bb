"""AdapterManager refuses the issue's bad inputs with a sentence and leaves the live base model untouched:
bad names, corrupted or pickle-only weights, adapters for another base or for missing layers, bad mixes, and
merging with nothing active."""

from __future__ import annotations

import json

import pytest
import torch
from test_adapters_fixtures import logits_of, make_adapter, manager, plain_logits  # noqa: F401

from playground.adapters.library import AdapterError
from playground.adapters.mixing import MixSpec


@pytest.mark.parametrize("name", ["nope", "../x", "a/b", "..", ""])
def test_bad_names_are_refused_with_a_sentence(manager, name):
    ops = [lambda: manager.activate(name), lambda: manager.delete(name), lambda: manager.rename(name, "fine"),
           lambda: manager.library.get(name), lambda: manager.export_zip(name, manager.library.root.parent)]
    if name != "nope":  # an invalid new name
        ops.append(lambda: manager.rename("alpha", name))
    for op in ops:
        with pytest.raises(AdapterError) as err:
            op()
        assert "Traceback" not in str(err.value) and len(str(err.value)) > 10
    assert manager.library.names() == ["beta", "alpha"]


def _assert_base_untouched(manager, tiny_llama_dir):
    assert manager.store.current.active_adapter is None
    assert torch.equal(logits_of(manager.store), plain_logits(tiny_llama_dir))


def test_corrupted_safetensors_is_refused_and_base_untouched(manager, tiny_llama_dir):
    weights = manager.library.folder("alpha") / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])  # truncated
    with pytest.raises(AdapterError, match="corrupted or truncated"):
        manager.activate("alpha")
    _assert_base_untouched(manager, tiny_llama_dir)
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(AdapterError, match="corrupted or truncated"):
        manager.activate("alpha")
    _assert_base_untouched(manager, tiny_llama_dir)
    manager.activate("beta")  # the library and the live model still work
    manager.deactivate()


def test_adapter_for_another_base_is_refused_naming_both(manager, tiny_llama_dir, smol_tokenizer_dir, tmp_path):
    from conftest import make_tiny_llama

    lm = manager.store.current
    wider = make_tiny_llama(tmp_path / "wider-llama", smol_tokenizer_dir, hidden_size=64, intermediate_size=96)
    make_adapter(manager.library.root, "wide", wider, seed=3, base_name="wider-llama", fingerprint=None)
    with pytest.raises(AdapterError) as err:
        manager.activate("wide")
    assert "wider-llama" in str(err.value) and lm.name in str(err.value) and "64" in str(err.value)
    _assert_base_untouched(manager, tiny_llama_dir)
    # Same shapes, but the metadata says another base: refused by the fingerprint.
    twin = make_tiny_llama(tmp_path / "twin-llama", smol_tokenizer_dir, seed=7)
    make_adapter(manager.library.root, "twin", twin, seed=4, base_name="twin-llama", fingerprint="0123456789abcdef")
    with pytest.raises(AdapterError, match="trained on twin-llama, but the loaded base model is"):
        manager.activate("twin")
    _assert_base_untouched(manager, tiny_llama_dir)


def test_adapter_targeting_missing_layers_is_refused(manager, tiny_llama_dir):
    from safetensors.torch import load_file, save_file

    weights = manager.library.folder("alpha") / "adapter_model.safetensors"
    save_file({k.replace("self_attn", "cross_attn"): v for k, v in load_file(weights).items()}, weights)
    with pytest.raises(AdapterError, match="has no layer model.layers.0.cross_attn"):
        manager.activate("alpha")
    _assert_base_untouched(manager, tiny_llama_dir)


def test_pickle_only_adapter_is_refused(manager, tmp_path):
    folder = manager.library.folder("alpha")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text((folder / "adapter_config.json").read_text())
    (pickled / "adapter_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(AdapterError, match="pickle file.*only safetensors"):
        manager.import_folder(pickled)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    with pytest.raises(AdapterError, match="only has adapter_model.bin"):
        manager.activate("alpha")


def test_mix_bad_inputs(manager):
    with pytest.raises(AdapterError, match="All mix weights are 0"):
        manager.mix(MixSpec(("alpha", "beta"), (0.0, 0.0), "m0"))
    with pytest.raises(AdapterError, match="at least two"):
        manager.mix(MixSpec(("alpha",), (1.0,), "m1"))
    with pytest.raises(AdapterError, match="weights must be ≥ 0"):
        manager.mix(MixSpec(("alpha", "beta"), (1.0, -0.5), "m2", "linear"))
    with pytest.raises(AdapterError, match="no adapter named 'ghost'"):
        manager.mix(MixSpec(("alpha", "ghost"), (1.0, 1.0), "m3"))
    with pytest.raises(AdapterError, match="already exists"):
        manager.mix(MixSpec(("alpha", "beta"), (1.0, 1.0), "beta"))
    with pytest.raises(AdapterError, match="path parts"):
        manager.mix(MixSpec(("alpha", "beta"), (1.0, 1.0), "../evil"))
    with pytest.raises(AdapterError, match="Unknown mix method"):
        manager.mix(MixSpec(("alpha", "beta"), (1.0, 1.0), "m4", "magic"))
    assert manager.library.names() == ["beta", "alpha"]  # nothing half-written


def test_mix_of_different_ranks_with_linear_gives_a_sentence(manager, tiny_llama_dir):
    lm = manager.store.current
    make_adapter(manager.library.root, "rank8", tiny_llama_dir, seed=5, r=8, base_name=lm.name,
                 fingerprint=lm.fingerprint)
    with pytest.raises(AdapterError, match="PEFT could not mix"):
        manager.mix(MixSpec(("alpha", "rank8"), (1.0, 1.0), "bad-linear", "linear"))
    assert not manager.library.folder("bad-linear").exists()
    assert manager.mix(MixSpec(("alpha", "rank8"), (1.0, 1.0), "good-cat", "cat")).rank == 12


def test_merge_with_nothing_active_is_refused(manager):
    with pytest.raises(AdapterError, match="no adapter is active"):
        manager.merge_and_save("x")
    assert not (manager.store.settings.data_dir / "merged").exists()


def test_import_folder_without_metadata_fills_it_from_the_config(manager, tiny_llama_dir, tmp_path):
    src = make_adapter(tmp_path, "plain peft", tiny_llama_dir, seed=9, base_name="", fingerprint=None, meta=False)
    info = manager.import_folder(src)
    assert info.name == "plain-peft" and info.kind == "imported" and info.rank == 4
    assert info.base_model == str(tiny_llama_dir)
    meta = json.loads((info.path / "playground.json").read_text())
    assert meta["base_fingerprint"] is None and sorted(meta["settings"]["target_modules"]) == ["q_proj", "v_proj"]
    manager.activate(info.name)  # unknown fingerprint: the shapes decide, and they fit
    assert manager.store.current.active_adapter == "plain-peft"
    again = manager.import_folder(src)  # same folder again: a unique name, never an overwrite
    assert again.name == "plain-peft-2"
    with pytest.raises(AdapterError, match="not a folder"):
        manager.import_folder(tmp_path / "missing")

