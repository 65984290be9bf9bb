"""Each browser's own adapter, under library changes: merge and the evaluations use this browser's adapter, a
rename is followed, a retrained adapter is reloaded without touching the server's default, a failing tuned column
keeps the base answer, a paused turn's adapter is never evicted, and bad metadata or long rows give no traceback."""

from __future__ import annotations

import json
import shutil
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from test_adapters_fixtures import logits_of, make_adapter, manager  # noqa: F401

from playground.adapters.session import AdapterChoice
from playground.compare.chat import CompareRequest, CompareSettings, next_histories, run_compare
from playground.model.turns import Urgency
from playground.ui import session_adapter as sa


def _services(manager):
    return SimpleNamespace(adapters=manager, store=manager.store)


@pytest.fixture()
def app(tiny_store, tiny_llama_dir):
    """The built app with 'alpha' and 'beta' in its library: (services, demo)."""
    from playground.services import Services
    from playground.ui.app_ui import build_app

    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    lm = tiny_store.current
    for name, seed in (("alpha", 1), ("beta", 2)):
        make_adapter(services.adapters.library.root, name, tiny_llama_dir, seed=seed, base_name=lm.name,
                     fingerprint=lm.fingerprint)
    return services, build_app(services)


def _handler(demo, name):
    found = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == name]
    assert len(found) == 1, name
    return found[0]


def _pick(name):
    return sa.as_json(AdapterChoice.pick(name))


def test_merge_in_a_browser_on_base_only_is_refused_though_the_server_has_an_adapter(app):
    services, demo = app
    services.adapters.activate("alpha")  # the server's default (/adapter_activate)
    said = _handler(demo, "on_merge")(_pick(None), "merged-x")
    assert "Nothing to merge" in said and "this browser" in said
    assert not (services.store.settings.data_dir / "merged" / "merged-x").exists()


def test_evaluations_with_an_empty_adapter_field_run_this_browsers_adapter(app, monkeypatch):
    from playground.ui import compare_preference, compare_reward, compare_tab

    services, demo = app
    services.adapters.activate("alpha")
    asked = []

    def stop(_adapters, request, *_):
        asked.append(request.adapter)
        raise ValueError("stopped here")

    for module, name in ((compare_tab, "evaluate"), (compare_preference, "evaluate_preferences"),
                         (compare_reward, "evaluate_rewards")):
        monkeypatch.setattr(module, name, stop)
    runs = [(_handler(demo, "run_eval"), "pig-latin", ()), (_handler(demo, "run_preference_eval"), "sign-off", ()),
            (_handler(demo, "run_reward_eval"), "pig-latin", (0,))]
    for run, recipe, more in runs:
        run(_pick("beta"), recipe, None, "", 5, *more)
    assert asked == ["beta", "beta", "beta"]  # this browser's, not the server's alpha
    for run, recipe, more in runs:  # a dropdown pick still wins
        run(_pick("beta"), recipe, None, "alpha", 5, *more)
    assert asked[3:] == ["alpha", "alpha", "alpha"]
    for run, recipe, more in runs:  # base only in this browser and nothing picked: a sentence, no run
        status = run(_pick(None), recipe, None, "", 5, *more)[0]
        assert "No adapter to evaluate" in status
    assert len(asked) == 6


def test_a_retrained_adapter_is_reloaded_and_the_server_default_stays(manager, tiny_llama_dir):
    lm = manager.store.current
    manager.activate("alpha")  # the server's default, the only adapter loaded
    old = logits_of(manager.view("alpha"))
    make_adapter(manager.library.root, "alpha", tiny_llama_dir, seed=7, base_name=lm.name,
                 fingerprint=lm.fingerprint)  # retrained with Overwrite: new files under the same name
    manager.activate("alpha", session_only=True)  # one browser's Activate reloads it
    assert manager.active() == "alpha"  # the projector's default is untouched
    new = logits_of(manager.view("alpha"))
    assert (new - old).abs().max() > 1e-3
    make_adapter(manager.library.root, "alpha", tiny_llama_dir, seed=8, base_name=lm.name,
                 fingerprint=lm.fingerprint)
    # A follower runs using(name == the server's default): it must see the new files too.
    newer = logits_of(manager.view("alpha"))
    assert (newer - new).abs().max() > 1e-3 and manager.active() == "alpha"


def test_a_retrained_adapter_gets_a_new_revision_with_another_one_loaded(manager, tiny_llama_dir):
    """Caches (Inside's lens, Decode's logits) are keyed on a view's revision: reloading new weights under the same
    name must change it, also when another adapter stays loaded (no unload of the last one to bump it)."""
    lm = manager.store.current
    for name in ("alpha", "beta"):
        logits_of(manager.view(name))  # both loaded
    before = manager.view("alpha").revision
    make_adapter(manager.library.root, "alpha", tiny_llama_dir, seed=7, base_name=lm.name,
                 fingerprint=lm.fingerprint)  # retrained with Overwrite
    logits_of(manager.view("alpha"))  # reloads it
    assert manager.view("alpha").revision != before


def test_a_browser_whose_adapter_was_renamed_follows_the_new_name(manager):
    svc = _services(manager)
    choice, _ = sa.pick(svc, "alpha")
    manager.rename("alpha", "gamma")
    new, header = sa.still_there(svc, choice)
    assert sa.session_value(new) == AdapterChoice.pick("gamma") and "gamma (this browser)" in header
    manager.rename("gamma", "delta")  # two renames: still followed
    assert sa.session_value(sa.still_there(svc, choice)[0]).name == "delta"
    manager.delete("delta")  # deleted after all: back to the base
    assert sa.session_value(sa.still_there(svc, choice)[0]) == AdapterChoice.pick(None)


def test_a_tuned_adapter_that_fails_keeps_the_base_answer(manager):
    request = CompareRequest("hi", CompareSettings(max_new_tokens=3), adapter=AdapterChoice.pick("alpha"))
    manager.activate("alpha", session_only=True)
    manager.delete("alpha")  # deleted by another browser while this one still has it picked
    result = run_compare(manager, request)
    assert result.columns["tuned"].error and "alpha" in result.columns["tuned"].error
    assert result.columns["base"].error is None and result.changed is None
    histories = next_histories({}, "hi", result)
    assert list(histories) == ["base"] and histories["base"][-1]["adapter"] is None


def test_a_pick_that_does_not_fit_a_newly_loaded_base_goes_back_to_base(manager, smol_tokenizer_dir, tmp_path):
    from conftest import make_tiny_llama

    from playground.model.store import LoadSettings

    svc = _services(manager)
    choice, _ = sa.pick(svc, "beta")
    assert sa.still_there(svc, choice)[0] is not None and "beta (this browser)" in sa.header_text(svc, choice)
    wider = make_tiny_llama(tmp_path / "wider", smol_tokenizer_dir, hidden_size=64, intermediate_size=96)
    manager.store.load(LoadSettings(source=str(wider), data_dir=manager.store.settings.data_dir))  # Model tab
    new, header = sa.still_there(svc, choice)
    assert sa.session_value(new) == AdapterChoice.pick(None) and "base (no adapter) (this browser)" in header


def test_the_card_says_this_browsers_state_after_an_operation(app):
    services, demo = app
    services.adapters.activate("alpha")  # the server's default
    out = _handler(demo, "on_rename")(_pick("beta"), "alpha", "alpha2")  # this browser runs beta
    card = out[3]
    assert "### alpha2" in card and "**active**" not in card and "**loaded**" in card


def test_a_paused_turns_adapter_is_never_evicted(manager, tiny_llama_dir):
    lm = manager.store.current
    make_adapter(manager.library.root, "gamma", tiny_llama_dir, seed=3, base_name=lm.name,
                 fingerprint=lm.fingerprint)
    manager.max_loaded = 2
    inside, others_done, result = threading.Event(), threading.Event(), {}

    def turn():  # a long generation with alpha that gives way between tokens (decode/cancel.GiveWay)
        try:
            with manager.using("alpha", Urgency.GENERATE):
                inside.set()
                deadline = time.monotonic() + 60
                while not others_done.is_set() and time.monotonic() < deadline:
                    manager.store.yield_turn()
                    time.sleep(0.005)
            result["ok"] = True
        except BaseException as err:  # noqa: BLE001 (reported below)
            result["err"] = err

    def others():  # other browsers' Decode steps load their adapters while the turn is paused
        for name in ("beta", "gamma"):
            with manager.using(name, Urgency.STEP):
                pass
        others_done.set()

    worker = threading.Thread(target=turn)
    worker.start()
    assert inside.wait(30)
    step = threading.Thread(target=others)
    step.start()
    step.join(60)
    worker.join(60)
    assert result == {"ok": True}, result.get("err")
    assert "alpha" in manager.loaded_names()


@pytest.mark.parametrize("meta, note", [({"settings": "r=8"}, "`settings`"),
                                        ({"loss_history": [{"loss": 1.5}]}, "no numeric `step`"),
                                        ({"loss_history": 7}, "`loss_history`")])
def test_an_import_with_malformed_metadata_lists_and_shows_a_note(manager, tmp_path, meta, note):
    from playground.adapters.charts import adapter_loss_figure

    src = tmp_path / "incoming"
    shutil.copytree(manager.library.root / "alpha", src)
    (src / "playground.json").write_text(json.dumps(meta))
    info = manager.import_folder(src, "imported")
    state = manager.state()
    assert "imported" in state.names
    for i in state.infos:
        adapter_loss_figure(i)
    assert note in state.detail("imported")
    (manager.library.root / "alpha" / "playground.json").write_text(json.dumps(meta))  # edited on disk
    assert note in manager.state().detail("alpha") and info.name == "imported"


def test_an_import_whose_metadata_is_not_an_object_is_refused_before_copying(manager, tmp_path):
    from playground.adapters.library import AdapterError

    src = tmp_path / "incoming"
    shutil.copytree(manager.library.root / "alpha", src)
    (src / "playground.json").write_text("[1, 2]")
    with pytest.raises(AdapterError, match="playground.json is not a JSON object"):
        manager.import_folder(src, "imported")
    assert "imported" not in manager.library.names()


def test_held_out_rows_longer_than_the_context_are_cut_not_a_traceback(smol_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from playground.adapters.live import AdapterManager
    from playground.compare.evaluation import EvalRequest, evaluate
    from playground.compare.preference_eval import PreferenceEvalRequest, evaluate_preferences
    from playground.model.store import LoadSettings, ModelStore

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    torch.manual_seed(0)
    gpt = tmp_path / "gpt"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=64,
                               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)).save_pretrained(gpt)
    tok.save_pretrained(gpt)
    store = ModelStore(LoadSettings(source=str(gpt), data_dir=tmp_path / "data"))
    store.load()
    adapters = AdapterManager.for_data_dir(store, tmp_path / "data")
    make_adapter(adapters.library.root, "g", gpt, seed=1, base_name=store.current.name,
                 fingerprint=store.current.fingerprint, targets=("c_attn",))
    long = " ".join(["word"] * 200)
    rows = tmp_path / "long.jsonl"
    rows.write_text(json.dumps({"prompt": long, "completion": "short answer"}) + "\n"
                    + json.dumps({"prompt": "hi", "completion": long}) + "\n")
    result = evaluate(adapters, EvalRequest(str(rows), "g", max_rows=2, max_new_tokens=4))
    assert result.rows == 2 and all(torch.isfinite(torch.tensor(s.loss)) for s in (result.base, result.tuned))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": long, "chosen": "yes " + long, "rejected": "no"}) + "\n")
    pref = evaluate_preferences(adapters, PreferenceEvalRequest(str(pairs), "g", max_rows=1, max_new_tokens=4))
    assert pref.rows == 1


def test_the_held_out_evaluation_lists_only_recipes_it_can_read():
    from playground.compare.evaluation import dataset_choices, load_examples
    from playground.ui.compare_preference import preference_choices

    ids = [i for _, i in dataset_choices()]
    assert "sign-off" not in ids and "pig-latin" in ids
    for recipe in ids:
        load_examples(recipe, True, 3)
    assert [i for _, i in preference_choices()] == ["sign-off"]
    # /evaluate, which takes any recipe id, names the evaluation that reads pairs (not a column-mapping sentence)
    with pytest.raises(ValueError, match=r"^sign-off holds preference pairs .*/evaluate_preference"):
        load_examples("sign-off", True, 3)


def test_the_decode_view_redraws_only_when_this_browsers_model_changes(manager, tiny_llama_dir):
    """Decode redraws on model_key changes: the model, the server's adapter this browser follows, this browser's
    own pick, or its weights retrained; an adapter saved or activated elsewhere leaves it (no redraw to race a
    click)."""
    import os

    services = _services(manager)
    follows, own = {"name": None, "follow": True}, {"name": "alpha", "follow": False}
    first, mine = sa.model_key(services, follows), sa.model_key(services, own)
    assert first != mine  # this browser's own pick
    make_adapter(manager.library.root, "gamma", tiny_llama_dir, seed=3, base_name=manager.store.current.name,
                 fingerprint=manager.store.current.fingerprint)  # a library change (a run saving an adapter)
    assert sa.model_key(services, follows) == first and sa.model_key(services, own) == mine
    manager.activate("beta")  # the server's adapter: followers redraw, a browser on its own pick does not
    assert sa.model_key(services, follows) != first and sa.model_key(services, own) == mine
    weights = manager.library.folder("alpha") / "adapter_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # retrained
    assert sa.model_key(services, own) != mine
