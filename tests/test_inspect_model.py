"""'Look inside the model' helpers on the tiny Llama and the real bundled model."""

import pytest

from playground.model.inspect import (
    architecture_text,
    count_params,
    format_count,
    layer_type_table,
    linear_layer_names,
    model_facts,
    params_per_module,
    render_chat_template,
)


def test_format_count():
    assert format_count(134_515_008) == "134.5M"
    assert format_count(1_100_048_384) == "1.1B"
    assert format_count(999) == "999"


def test_tiny_llama_facts_and_tables(tiny_store):
    lm = tiny_store.current
    facts = model_facts(lm.model, lm.name)
    total, trainable = count_params(lm.model)
    assert facts.total_params == total == sum(p.numel() for p in lm.model.parameters())
    assert (facts.hidden_size, facts.num_layers, facts.num_heads, facts.num_kv_heads) == (32, 2, 4, 2)
    assert facts.context_length == 512
    # Rows add up to the total even with tied input/output embeddings.
    assert sum(n for _, n in params_per_module(lm.model)) == total
    rows = {(r[0], r[2]): r for r in layer_type_table(lm.model)}
    assert rows[("Linear", "model.layers.*.self_attn.q_proj")][4] == 2  # one per layer
    assert rows[("Embedding", "model.embed_tokens")][3] == f"{facts.vocab_size} × 32"
    assert linear_layer_names(lm.model) == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                            "down_proj"]
    assert architecture_text(lm.model).startswith("LlamaForCausalLM(")


def test_chat_template_shows_special_tokens(tiny_store):
    text, html = render_chat_template(tiny_store.current.tokenizer)
    assert text.count("<|im_start|>") == 5  # system, user, assistant, user + generation prompt
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert '<span class="pg-special">&lt;|im_start|&gt;</span>' in html


def test_no_template_message():
    class Plain:
        chat_template = None

    text, _ = render_chat_template(Plain())
    assert "no chat template" in text


@pytest.mark.slow
def test_bundled_model_is_134_5m(bundled_store):
    facts = model_facts(bundled_store.current.model, "x")
    assert facts.total_params == 134_515_008 and format_count(facts.total_params) == "134.5M"
    assert (facts.num_layers, facts.num_heads, facts.num_kv_heads, facts.vocab_size) == (30, 9, 3, 49152)
