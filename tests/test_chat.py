"""Compare logic: base vs tuned with the same seed, the third column, histories, "what changed", bad input."""

from __future__ import annotations

import threading

import pytest
import torch
from test_adapters_fixtures import make_adapter, manager  # noqa: F401

from playground.compare.chat import (
    NO_ADAPTER_HINT,
    CompareRequest,
    CompareSettings,
    build_prompt_ids,
    next_histories,
    run_compare,
    stream_compare,
)
from playground.compare.diff import first_divergence, what_changed_html
from playground.decode.sampling import generate_kwargs

SAMPLED = CompareSettings.from_dict({"max_new_tokens": 16, "temperature": 0.9, "top_k": 40, "top_p": 0.95}, seed=11)


@pytest.fixture()
def strong(manager, tiny_llama_dir):
    """A strong adapter so the tiny model's answers visibly change."""
    lm = manager.store.current
    make_adapter(manager.library.root, "strong", tiny_llama_dir, seed=21, base_name=lm.name,
                 fingerprint=lm.fingerprint, scale=30.0)
    manager.activate("strong")
    return manager


def _plain_generate(model_dir, prompt_ids, settings):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.tensor([prompt_ids])
    torch.manual_seed(settings.seed)
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=settings.max_new_tokens,
                         pad_token_id=model.config.pad_token_id, **generate_kwargs(settings.sampling))
    return out[0, len(prompt_ids):].tolist()


def test_base_column_equals_a_plain_base_model_with_the_same_seed(strong, tiny_llama_dir):
    result = run_compare(strong, CompareRequest("Tell me a story", SAMPLED))
    base = result.columns["base"]
    expected = _plain_generate(tiny_llama_dir, base.prompt_ids, SAMPLED)
    assert base.token_ids == expected[:len(base.token_ids)] and len(base.token_ids) >= len(expected) - 1
    assert base.adapter is None and result.columns["tuned"].adapter == "strong" and result.adapter == "strong"


def test_tuned_column_equals_the_merged_model_and_answers_differ(strong, tiny_llama_dir):
    result = run_compare(strong, CompareRequest("Tell me a story", SAMPLED))
    tuned, base = result.columns["tuned"], result.columns["base"]
    merged = strong.merge_and_save("strong-merged")
    expected = _plain_generate(merged, tuned.prompt_ids, SAMPLED)
    assert tuned.token_ids == expected[:len(tuned.token_ids)]
    assert tuned.text != base.text
    assert result.changed.divergence_index == first_divergence(tuned.token_ids, base.token_ids) is not None


def test_same_seed_same_outputs_and_another_seed_differs(strong):
    first = run_compare(strong, CompareRequest("Hello", SAMPLED)).as_api()
    again = run_compare(strong, CompareRequest("Hello", SAMPLED)).as_api()
    assert first == again
    other = CompareSettings.from_dict({"max_new_tokens": 16, "temperature": 0.9, "top_k": 40, "top_p": 0.95}, seed=12)
    assert run_compare(strong, CompareRequest("Hello", other)).as_api()["base_text"] != first["base_text"]


def test_what_changed_log_probs_are_the_models_own(strong, tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    result = run_compare(strong, CompareRequest("Hi", SAMPLED))
    tuned = result.columns["tuned"]
    full = torch.tensor([tuned.prompt_ids + tuned.token_ids])
    start, n = len(tuned.prompt_ids) - 1, len(tuned.token_ids)
    target = torch.tensor(tuned.token_ids)
    plain = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()
    with torch.no_grad():
        base_lp = plain(input_ids=full).logits[0, start:start + n].log_softmax(-1)[torch.arange(n), target]
        with strong.store.use() as lm:
            tuned_lp = lm.model(input_ids=full).logits[0, start:start + n].log_softmax(-1)[torch.arange(n), target]
    tokens = result.changed.tokens
    assert len(tokens) == n
    assert torch.allclose(torch.tensor([t.logp_base for t in tokens]), base_lp, atol=1e-3)
    assert torch.allclose(torch.tensor([t.logp_tuned for t in tokens]), tuned_lp, atol=1e-3)
    api = result.as_api()["tokens"]
    assert api[0]["delta"] == pytest.approx(api[0]["logp_tuned"] - api[0]["logp_base"], abs=1e-4)
    html = what_changed_html(result.changed, "strong")
    assert html.count('class="pg-tok') == n and "pg-diverge" in html and "log p<sub>tuned</sub>" in html
    assert "p(tuned) =" in html and "p(base) =" in html


def test_no_active_adapter_shows_base_only_with_a_hint(manager):
    result = run_compare(manager, CompareRequest("Hello", SAMPLED))
    assert set(result.columns) == {"base"} and result.changed is None and result.hint == NO_ADAPTER_HINT
    api = result.as_api()
    assert api["tuned_text"] is None and api["tokens"] == [] and api["base_text"]
    assert "Activate an adapter" in what_changed_html(None, None)


def test_third_column_runs_another_adapter_and_restores_the_active_one(strong):
    result = run_compare(strong, CompareRequest("Hello", SAMPLED, other_adapter="beta"))
    assert result.columns["other"].adapter == "beta" and strong.store.current.active_adapter == "strong"
    strong.activate("beta")
    as_tuned = run_compare(strong, CompareRequest("Hello", SAMPLED)).columns["tuned"]
    assert as_tuned.token_ids == result.columns["other"].token_ids


def test_unknown_third_adapter_only_marks_its_column(strong):
    result = run_compare(strong, CompareRequest("Hello", SAMPLED, other_adapter="../x"))
    assert result.columns["other"].error and "path parts" in result.columns["other"].text
    assert result.columns["tuned"].token_ids and result.columns["base"].token_ids


def test_multi_turn_histories_per_column(strong):
    req = CompareRequest("First question", SAMPLED)
    r1 = run_compare(strong, req)
    hist = next_histories({}, req.message, r1)
    assert [m["role"] for m in hist["base"]] == ["user", "assistant"]
    assert hist["tuned"][1]["content"] == r1.columns["tuned"].text and hist["tuned"][1]["adapter"] == "strong"
    r2 = run_compare(strong, CompareRequest("Second", SAMPLED, histories=hist))
    tok = strong.store.current.tokenizer
    for col in ("base", "tuned"):
        assert r2.columns[col].prompt_ids == build_prompt_ids(tok, "", hist[col], "Second")
        assert tok.decode(r2.columns[col].prompt_ids).count("First question") == 1
    assert r2.columns["base"].prompt_ids != r2.columns["tuned"].prompt_ids  # each column has its own history


def test_system_prompt_reaches_both_columns(strong):
    settings = CompareSettings.from_dict({"max_new_tokens": 4, "system_prompt": "You are terse."}, seed=1)
    result = run_compare(strong, CompareRequest("Hi", settings))
    tok = strong.store.current.tokenizer
    for col in ("base", "tuned"):
        assert "You are terse." in tok.decode(result.columns[col].prompt_ids)


def test_streaming_yields_growing_text(strong):
    updates = list(stream_compare(strong, CompareRequest("Hello", SAMPLED)))
    assert updates[-1].result is not None and len(updates) > 5
    tuned_texts = [u.texts.get("tuned", "") for u in updates if "tuned" in u.texts]
    assert all(a == b[:len(a)] for a, b in zip(tuned_texts, tuned_texts[1:]))  # only ever grows
    assert updates[-1].texts["tuned"] == updates[-1].result.columns["tuned"].text


def test_two_sessions_comparing_at_once_get_their_own_answers(strong):
    reqs = [CompareRequest("Session one", SAMPLED), CompareRequest("Session two", SAMPLED)]
    solo = [run_compare(strong, r).as_api() for r in reqs]
    got: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, run_compare(strong, reqs[i]).as_api()))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == {0: solo[0], 1: solo[1]}


@pytest.mark.parametrize("values,match", [
    ({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"), ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"tempreature": 1}, "Unknown setting"), ({"top_k": "many"}, "top_k"),
])
def test_bad_settings_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        CompareSettings.from_dict(values)


def test_empty_message_and_bad_seed_are_refused():
    with pytest.raises(ValueError, match="message is empty"):
        CompareRequest("   ")
    with pytest.raises(ValueError, match="seed"):
        CompareSettings.from_dict({}, seed=-3)


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert first_divergence([], [4]) == 0
