"""One reading of a model's context length for every screen that shows or cuts by it."""

from __future__ import annotations


def test_every_context_reading_takes_the_same_config_keys():
    """The Model tab read n_ctx while Decode and the evaluations did not: a config with only n_ctx had a context
    length on one screen and none (or the tokenizer's guess) on the others."""
    from types import SimpleNamespace

    from playground.compare.fit import context_of
    from playground.decode.session import context_limit
    from playground.model.inspect import context_length

    only_n_ctx = SimpleNamespace(config=SimpleNamespace(n_ctx=1024))
    lm = SimpleNamespace(base_model=only_n_ctx, tokenizer=SimpleNamespace(model_max_length=4096))
    assert context_length(only_n_ctx) == context_of(only_n_ctx) == context_limit(lm) == 1024
    silent = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=0))
    assert context_length(silent) is None and context_of(silent) is None
    assert context_limit(SimpleNamespace(base_model=silent, tokenizer=SimpleNamespace(model_max_length=4096))) == 4096
    # a key set to 0 (unknown) falls through to the next one that says something, as each reading did before
    zero_then_ctx = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=0, n_ctx=512))
    assert context_length(zero_then_ctx) == context_of(zero_then_ctx) == 512
