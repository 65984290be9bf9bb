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


# Gemma's and Mistral-Instruct's templates raise on a system turn.
NO_SYSTEM = ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
             "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")


def test_a_template_that_refuses_a_system_turn_renders_without_it(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    tokenizer.chat_template = NO_SYSTEM
    text, html = render_chat_template(tokenizer)
    assert "system" not in text and text.count("<|im_start|>") == 3  # user, assistant, user
    assert "refuses a system turn" in html
    tokenizer.chat_template = "{{ raise_exception('nothing works') }}"
    text, html = render_chat_template(tokenizer)  # a sentence, not a TemplateError
    assert "could not render" in text and "nothing works" in html


def test_layer_types_count_a_tied_lm_head_once(tiny_store):
    """The tiny Llama ties lm_head to embed_tokens: the rows add up to the total, as the per-module rows do."""
    model = tiny_store.current.model
    assert model.lm_head.weight is model.model.embed_tokens.weight
    rows = layer_type_table(model)
    (head,) = [r for r in rows if r[2].startswith("lm_head")]
    assert head[5] == 0 and "tied" in head[2]
    norms_and_linears = sum(r[5] for r in rows)
    assert norms_and_linears == count_params(model)[0] == sum(n for _, n in params_per_module(model))


@pytest.mark.parametrize("family,kv,inner,derived", [("falcon", 1, 128, False), ("gpt2", 4, 128, True),
                                                     ("llama", 2, 64, False)])
def test_kv_heads_and_intermediate_size_across_families(family, kv, inner, derived):
    """Falcon's multi-query layout has one KV head whatever num_kv_heads says; GPT-2 leaves n_inner None, which
    means 4 × hidden."""
    import transformers

    from playground.model.overview import model_overview
    from tests.conftest import TINY_FAMILIES

    cls_name, kwargs = TINY_FAMILIES[family]
    model = transformers.AutoModelForCausalLM.from_config(getattr(transformers, cls_name)(vocab_size=100, **kwargs))
    facts = model_facts(model, family)
    assert (facts.num_kv_heads, facts.intermediate_size, facts.intermediate_derived) == (kv, inner, derived)
    if family == "falcon":
        assert model.transformer.h[0].self_attention.num_kv_heads == 1  # what the model really runs
    if derived:
        lm = type("LM", (), dict(model=model, name=family, quantization="none", load_seconds=0.0, from_cache=False,
                                 tokenizer=type("T", (), dict(chat_template=None))()))()
        assert ["Intermediate size", "128 (4 × hidden)"] in model_overview(lm).facts
