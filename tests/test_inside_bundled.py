"""Inside the model on the real bundled SmolLM2-135M-Instruct: the lens finds " Paris", attention on a long prompt."""

from __future__ import annotations

import pytest

from playground.inside.attention import attn_implementation
from playground.inside.service import InsideService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inside(bundled_store) -> InsideService:
    return InsideService(bundled_store)


def test_lens_shows_where_paris_appears(inside, bundled_store):
    if bundled_store.current.active_adapter:
        pytest.skip("another test left an adapter active")
    result = inside.lens("The capital of France is")
    top1 = [layer.top[0].token for layer in result.layers]
    assert "␣Paris" in top1  # the model's answer is the lens's top-1 at some layer …
    assert result.answer.token == "␣Paris" and result.first_layer == top1.index("␣Paris")
    # … and a layer before the last already has it among its top 5 (it "appears" before the output)
    assert any("␣Paris" in [t.token for t in layer.top] for layer in result.layers[:-1])
    assert len(result.layers) == 31 and result.max_abs_diff < 1e-5
    assert "Paris" in result.summary() and f"layer {result.first_layer}" in result.summary()


def test_attention_on_a_200_token_prompt(inside, bundled_store):
    before = attn_implementation(bundled_store.current.model)
    text = ("Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
            "who repaired every clock in the valley. ") * 7
    result = inside.attention(text)
    n = len(result.prompt.ids)
    assert 150 <= n <= 256 and result.weights.shape == (30, 9, n, n)
    assert attn_implementation(bundled_store.current.model) == before
    api = result.as_api(30, 0)
    assert len(api["last_token"]) == n and api["num_heads"] == 9
    with pytest.raises(ValueError, match="at most 256 tokens"):
        inside.attention(text * 2)


def test_chat_mode_feeds_the_template(inside):
    result = inside.lens("What is the capital of France?", chat=True)
    assert result.prompt.labels[0] == "<|im_start|>" and "<|im_start|>assistant" in result.prompt.fed_text
    assert result.layers[-1].index == 30 and result.max_abs_diff < 1e-5
