"""AdapterManager on the live (tiny) model: activate / swap / deactivate, mix, merge, delete, rename, and
reloads when the library changes on disk. Outputs are compared as logits of a fixed input. The bad inputs
are in test_adapters_refused.py."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from test_adapters_fixtures import logits_of, make_adapter, manager, plain_logits  # noqa: F401

from playground.adapters.library import AdapterError
from playground.adapters.live import AdapterManager, base_context, next_token_probs_base_vs_tuned
from playground.adapters.mixing import MixSpec
from playground.adapters.views import dataset_text
from playground.model.store import ModelStore

ATOL = 1e-5


def test_activate_changes_outputs_and_deactivate_restores_base_exactly(manager, tiny_llama_dir):
    store = manager.store
    base = logits_of(store)
    assert torch.equal(base, plain_logits(tiny_llama_dir))
    manager.activate("alpha")
    alpha = logits_of(store)
    assert (alpha - base).abs().max() > 1e-2  # a random non-identity adapter really changes the output
    assert store.current.active_adapter == "alpha" and "`alpha`" in store.header_markdown()
    manager.deactivate()
    assert torch.equal(logits_of(store), base)  # exactly, not approximately
    assert torch.equal(plain_logits(tiny_llama_dir), base)
    # Even a caller that bypasses generation_context and runs the bare base model sees the base.
    with store.use() as lm, torch.no_grad():
        bare = lm.base_model(input_ids=torch.tensor([[1, 5, 9, 42, 7, 3]])).logits[0, -1]
    assert torch.equal(bare, base)
    assert "base (no adapter)" in store.header_markdown()


def test_swap_between_loaded_adapters_without_reloading_the_base(manager):
    store = manager.store
    manager.activate("alpha")
    alpha = logits_of(store)
    base_obj = store.current.base_model
    rev = store.revision
    manager.activate("beta")
    beta = logits_of(store)
    assert (beta - alpha).abs().max() > 1e-2
    manager.activate("alpha")
    assert torch.allclose(logits_of(store), alpha, atol=ATOL)
    assert store.current.base_model is base_obj  # the base was never reloaded
    assert store.revision > rev  # caches keyed on the revision see every swap
    assert sorted(manager.loaded_names()) == ["alpha", "beta"]
    assert manager.set_active("").startswith("Base model only") and store.current.active_adapter is None


def test_using_runs_another_adapter_and_restores_the_active_one(manager):
    store = manager.store
    manager.activate("beta")
    beta = logits_of(store)
    manager.activate("alpha")
    alpha = logits_of(store)
    with manager.using("beta") as lm, torch.no_grad():
        inside = lm.model(input_ids=torch.tensor([[1, 5, 9, 42, 7, 3]])).logits[0, -1]
    assert torch.allclose(inside, beta, atol=ATOL)
    assert torch.allclose(logits_of(store), alpha, atol=ATOL) and store.current.active_adapter == "alpha"


def test_next_token_probs_base_vs_tuned(manager, tiny_llama_dir):
    ids = torch.tensor([1, 5, 9, 42, 7, 3])
    out = next_token_probs_base_vs_tuned(manager.store, ids)
    assert out.tuned is None and out.adapter is None
    manager.activate("alpha")
    out = next_token_probs_base_vs_tuned(manager.store, ids)
    assert out.adapter == "alpha"
    assert torch.allclose(out.base, plain_logits(tiny_llama_dir).softmax(-1), atol=1e-6)
    assert torch.allclose(out.tuned, logits_of(manager.store).softmax(-1), atol=1e-6)
    assert (out.tuned.log() - out.base.log()).abs().max() > 1e-2


@pytest.mark.parametrize("method", ["linear", "cat", "svd"])
def test_mix_with_weights_one_zero_equals_the_first_adapter(manager, method):
    store = manager.store
    manager.activate("alpha")
    alpha = logits_of(store)
    manager.deactivate()
    info = manager.mix(MixSpec(("alpha", "beta"), (1.0, 0.0), f"mix-{method}", method))
    assert store.current.active_adapter is None  # mixing does not change what is active
    meta = json.loads((info.path / "playground.json").read_text())
    assert meta["kind"] == "mixed" and meta["base_fingerprint"] == store.current.fingerprint
    assert meta["settings"]["mix"] == {"adapters": ["alpha", "beta"], "weights": [1.0, 0.0], "method": method,
                                       "datasets": ["pig-latin", "pig-latin"]}
    assert (info.path / "adapter_model.safetensors").is_file() and (info.path / "adapter_config.json").is_file()
    assert info.rank == (8 if method == "cat" else 4)
    manager.activate(info.name)
    assert torch.allclose(logits_of(store), alpha, atol=1e-4)
    # After a restart (new store, new manager) the saved mix loads from disk with the same outputs.
    restarted = ModelStore(store.settings)
    restarted.load()
    AdapterManager.for_data_dir(restarted, store.settings.data_dir).activate(info.name)
    assert torch.allclose(logits_of(restarted), alpha, atol=1e-4)


def test_mix_half_and_half_is_between(manager):
    info = manager.mix(MixSpec(("alpha", "beta"), (0.5, 0.5), "half", "cat"))
    manager.activate(info.name)
    mixed = logits_of(manager.store)
    manager.activate("alpha")
    assert (mixed - logits_of(manager.store)).abs().max() > 1e-3


def test_merge_and_save_reloads_as_plain_model_with_tuned_outputs(manager):
    store = manager.store
    manager.activate("alpha")
    tuned = logits_of(store)
    folder = manager.merge_and_save("alpha-merged")
    assert folder == store.settings.data_dir / "merged" / "alpha-merged"
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert not list(folder.glob("*.bin")) and not (folder / "adapter_config.json").exists()
    assert torch.allclose(plain_logits(folder), tuned, atol=1e-4)
    # The live model is untouched: still tuned, and the base still comes back exactly.
    assert torch.allclose(logits_of(store), tuned, atol=ATOL)
    with pytest.raises(AdapterError, match="already exists"):
        manager.merge_and_save("alpha-merged")


def test_delete_active_deactivates_first(manager, tiny_llama_dir):
    manager.activate("alpha")
    folder = manager.library.folder("alpha")
    assert manager.delete("alpha").startswith("Deleted")
    assert not folder.exists() and manager.store.current.active_adapter is None
    assert "alpha" not in manager.library.names() and "alpha" not in manager.loaded_names()
    assert torch.equal(logits_of(manager.store), plain_logits(tiny_llama_dir))
    assert not [p for p in manager.library.root.iterdir() if p.name.startswith(".")]  # no trash left behind
    manager.activate("beta")  # the other adapter still works
    manager.delete("beta")  # the last loaded adapter: the PEFT wrapper goes away entirely
    assert not hasattr(manager.store.current.model, "peft_config")
    assert torch.equal(logits_of(manager.store), plain_logits(tiny_llama_dir))


def test_rename_keeps_it_active_and_updates_metadata(manager):
    manager.activate("alpha")
    before = logits_of(manager.store)
    manager.rename("alpha", "alpha.v2")
    assert manager.store.current.active_adapter == "alpha.v2" and "`alpha.v2`" in manager.store.header_markdown()
    meta = json.loads((manager.library.folder("alpha.v2") / "playground.json").read_text())
    assert meta["name"] == "alpha.v2" and not manager.library.folder("alpha").exists()
    manager.activate("beta")
    manager.activate("alpha.v2")  # the dotted name works (PEFT keys are internal)
    assert torch.allclose(logits_of(manager.store), before, atol=ATOL)
    with pytest.raises(AdapterError, match="already exists"):
        manager.rename("alpha.v2", "beta")


def test_library_table_and_metadata(manager):
    assert {r[0]: r[1] for r in manager.state().rows()} == {"alpha": "on disk", "beta": "on disk"}
    manager.activate("alpha")
    manager.activate("beta")
    state = manager.state()
    rows = {r[0]: r for r in state.rows()}
    assert set(rows) == {"alpha", "beta"}
    assert rows["beta"][1] == "active" and rows["alpha"][1] == "loaded"  # words, never only a symbol
    assert rows["alpha"][4] == "pig-latin" and rows["alpha"][5] == 4 and rows["alpha"][6] == "q_proj, v_proj"
    assert rows["alpha"][10] == "2025-01-01 00:00"  # short enough for the table; the card keeps the full stamp
    summary = {s["name"]: s for s in state.summaries()}
    assert summary["beta"]["active"] and summary["alpha"]["final_eval_loss"] == 2.5
    card = state.detail("alpha")
    assert "learning_rate" in card and "`pig-latin` · 10 rows · sha256 `000000000000…`" in card
    split = {"name": "pig-latin", "rows": 694, "train_rows": 625, "eval_rows": 69}
    assert dataset_text(split) == "`pig-latin` · 694 rows (625 trained on, 69 held out for the eval loss)"
    assert "{" not in card.split("**Settings**")[0] and "0" * 64 not in card  # no raw JSON, no full sha
    assert "Training time:** 1.5 s" in card
    from playground.adapters.charts import adapter_loss_figure

    fig = adapter_loss_figure(state.info("alpha"))
    assert len([t for t in fig.data if t.name == "train loss"][0].x) == 10
    assert list([t for t in fig.data if t.name == "eval loss"][0].y) == [2.8, 2.5]
    with pytest.raises(AdapterError, match="no adapter named 'ghost'"):
        state.detail("ghost")


def test_mixed_adapter_card_says_what_it_was_mixed_from_and_draws_no_empty_chart(manager):
    from playground.adapters.charts import adapter_loss_figure

    info = manager.mix(MixSpec(("alpha", "beta"), (1.0, 0.5), "blend", "cat"))
    card = manager.state().detail("blend")
    assert "**Mixed** (not trained) from **alpha** × 1 (trained on `pig-latin`) + **beta** × 0.5" in card
    assert "method **cat**" in card and "Training time" not in card and "No loss curve" in card
    assert adapter_loss_figure(info) is None


def test_model_switch_resets_loaded_adapters(manager, tiny_llama_dir):
    store = manager.store
    manager.activate("alpha")
    store.load()  # a new base model object (same checkpoint)
    assert store.current.active_adapter is None and manager.loaded_names() == []
    assert torch.equal(logits_of(store), plain_logits(tiny_llama_dir))
    manager.activate("beta")
    assert manager.loaded_names() == ["beta"]


def test_swap_during_a_streaming_generation_waits_and_corrupts_nothing(manager):
    from playground.compare.chat import CompareRequest, CompareSettings, run_compare, stream_compare

    manager.activate("alpha")
    request = CompareRequest("Hello", CompareSettings.from_dict({"max_new_tokens": 24, "temperature": 0.9}, seed=5))
    expected = run_compare(manager, request)
    stream = stream_compare(manager, request)
    first = next(stream)  # the worker now holds the model lock
    swapped = threading.Event()

    def swap():
        manager.activate("beta")
        swapped.set()

    t = threading.Thread(target=swap)
    t.start()
    *_, last = [first, *stream]
    t.join(30)
    assert swapped.is_set() and manager.store.current.active_adapter == "beta"
    got = last.result
    assert got.adapter == "alpha"  # the turn finished with the adapter it started with
    assert got.columns["tuned"].token_ids == expected.columns["tuned"].token_ids
    assert got.columns["base"].token_ids == expected.columns["base"].token_ids
    with manager.store.use() as lm, base_context(lm):
        pass  # the lock is free again


def test_adapter_changed_on_disk_is_reloaded(manager, tiny_llama_dir):
    """Retraining with overwrite replaces the folder: the next activation loads the new weights."""
    lm = manager.store.current
    manager.activate("alpha")
    old = logits_of(manager.store)
    manager.deactivate()  # alpha is the only adapter in the wrapper: the reload removes and re-creates it
    import shutil

    shutil.rmtree(manager.library.folder("alpha"))
    make_adapter(manager.library.root, "alpha", tiny_llama_dir, seed=33, base_name=lm.name,
                 fingerprint=lm.fingerprint, r=2)
    manager.activate("alpha")
    new = logits_of(manager.store)
    assert (new - old).abs().max() > 1e-3 and manager.loaded_names() == ["alpha"]


def test_stamp_changes_with_every_change_an_adapter_list_shows(manager, tiny_llama_dir):
    """The app's change signal: activation, loading (also for one turn), rename, delete, mix, and an adapter
    written to disk by another process (a training worker) all change it; a plain read does not."""
    from playground.adapters.files import save_adapter_folder

    seen = [manager.stamp()]

    def changed() -> bool:
        seen.append(manager.stamp())
        return seen[-1] != seen[-2]

    assert not changed()
    manager.activate("alpha")
    assert changed()
    manager.deactivate()
    assert changed()
    with manager.using("beta"):  # loads beta for one pass: the table's "loaded" column changes
        pass
    assert changed()
    manager.rename("beta", "beta2")
    assert changed()
    manager.mix(MixSpec(("alpha", "beta2"), (1.0, 1.0), "both", "linear"))
    assert changed()
    manager.delete("both")
    assert changed()
    with manager.using("alpha") as lm:  # what the worker does: save_adapter_folder into <data>/adapters
        key = manager._loaded["alpha"].key
        save_adapter_folder(manager.library.root, "from-worker", lm.model, {"kind": "trained"}, adapter_name=key)
    assert changed() and "from-worker" in manager.state().names
    manager.state()
    assert not changed()


def test_an_adapters_compatibility_note_is_its_own_and_said_each_time(manager, tiny_llama_dir):
    """Notes used to live on the manager: another browser's load left them for the next activation of any
    adapter, and an adapter already loaded lost its own."""
    lm = manager.store.current
    make_adapter(manager.library.root, "odd", tiny_llama_dir, seed=5, base_name=lm.name, fingerprint="f" * 16)
    with manager.using("odd"):  # another browser's turn loads it (no activation, no status sentence)
        pass
    said = manager.activate("alpha", session_only=True)
    assert "Note" not in said
    for _ in range(2):  # loaded already the second time: the note is still its own
        assert "its base fingerprint differs" in manager.activate("odd", session_only=True)
