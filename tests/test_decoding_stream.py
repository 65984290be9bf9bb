"""'Generate N tokens' streams exactly what generate() produces, with each token's probability."""

from __future__ import annotations

import threading

import pytest
import torch

from playground.decode.sampling import SamplingSettings, generate_kwargs
from playground.decode.session import DecodeService, encode_prompt
from playground.decode.stream import GenerateRequest, generate_all, stream_generate


def bare_generate(lm, ids, settings, n, seed):
    input_ids = torch.tensor([list(ids)])
    torch.manual_seed(seed)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=n,
                            output_scores=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, **generate_kwargs(settings))
    return out.sequences[0, len(ids):].tolist(), [s[0].softmax(-1) for s in out.scores]


@pytest.mark.parametrize("settings", [
    SamplingSettings(temperature=0.8, top_k=40, top_p=0.95, min_p=0.01, repetition_penalty=1.2),
    SamplingSettings(temperature=1.3, top_k=0),
    SamplingSettings(temperature=0.0, repetition_penalty=1.3),
])
def test_stream_equals_generate_with_the_same_seed(tiny_store, settings):
    lm = tiny_store.current
    ids = encode_prompt(lm.tokenizer, "Once upon a time", False, 400).ids
    snapshots = list(stream_generate(tiny_store, GenerateRequest(ids, settings, max_new_tokens=12, seed=7)))
    tokens = snapshots[-1]
    assert all(len(a) <= len(b) for a, b in zip(snapshots, snapshots[1:]))  # a growing stream
    expected, step_probs = bare_generate(lm, ids, settings, 12, seed=7)
    assert [t.token_id for t in tokens] == expected
    for t, probs in zip(tokens, step_probs):
        assert t.prob == pytest.approx(float(probs[t.token_id]), abs=1e-6)
        assert t.alternatives[0][1] == pytest.approx(float(probs.max()), abs=1e-6)
        assert 0 < t.raw_prob <= 1 and t.rank >= 1


def test_stream_yields_several_times_for_a_long_run(tiny_store):
    lm = tiny_store.current
    ids = encode_prompt(lm.tokenizer, "Hello", False, 400).ids
    snaps = list(stream_generate(tiny_store, GenerateRequest(ids, SamplingSettings(temperature=1.0), 30, 1)))
    assert len(snaps) >= 3 and len(snaps[-1]) == 30


def test_tokens_are_recorded_in_the_consumers_thread_not_between_decode_steps(tiny_store, monkeypatch):
    """generate()'s thread only queues each token's scores; the softmax, alternatives and rank are the
    consumer's work (on a 2-CPU machine, the CPU the model's one torch thread leaves free)."""
    from playground.decode import stream

    threads: list[str] = []
    record = stream._TokenStreamer._record
    monkeypatch.setattr(stream._TokenStreamer, "_record",
                        lambda self, *a: threads.append(threading.current_thread().name) or record(self, *a))
    lm = tiny_store.current
    ids = encode_prompt(lm.tokenizer, "Hello", False, 400).ids
    tokens = generate_all(tiny_store, GenerateRequest(ids, SamplingSettings(temperature=1.0, top_k=0), 16, 3))
    assert len(tokens) == len(threads) == 16 and set(threads) == {threading.current_thread().name}
    raw = DecodeService(tiny_store).distribution(ids, SamplingSettings()).raw_probs
    assert tokens[0].raw_prob == pytest.approx(float(raw[tokens[0].token_id]), abs=1e-6)  # the model's own


def test_stopping_the_consumer_releases_the_model(tiny_store):
    lm = tiny_store.current
    ids = encode_prompt(lm.tokenizer, "Hello", False, 400).ids
    calls = []
    hook = lm.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        stream = stream_generate(tiny_store, GenerateRequest(ids, SamplingSettings(), 500, 0))
        next(stream)
        stream.close()  # the browser went away: generate() must stop at the next token
        assert tiny_store._lock.acquire(timeout=60)
        tiny_store._lock.release()
    finally:
        hook.remove()
    assert len(calls) < 400


@pytest.mark.parametrize("field,kwargs", [("max_new_tokens", dict(max_new_tokens=0)), ("seed", dict(seed=-1))])
def test_bad_request_values_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=field):
        GenerateRequest(**{"ids": (1, 2), "settings": SamplingSettings(), **kwargs})


def test_generate_all_on_the_bundled_model(bundled_store):
    with bundled_store.use() as lm:
        ids = encode_prompt(lm.tokenizer, "The capital of France is", False, 4000).ids
    tokens = generate_all(bundled_store, GenerateRequest(ids, SamplingSettings(temperature=0), 4, 0))
    with bundled_store.use() as lm:
        expected, _ = bare_generate(lm, ids, SamplingSettings(temperature=0), 4, 0)
        text = lm.tokenizer.decode([t.token_id for t in tokens])
    assert [t.token_id for t in tokens] == expected and "Paris" in text
