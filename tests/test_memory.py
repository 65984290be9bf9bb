"""The fine-tuning memory estimator against hand-computed values."""

import pytest

from playground.model.charts import memory_chart
from playground.model.memory import MemoryEstimateConfig, ModelShape, estimate_memory, model_shape

# 1000 params, hidden 8, 2 layers, 2 heads, vocab 10; LoRA would wrap an 8→8 and an 8→16 Linear.
SHAPE = ModelShape(total_params=1000, hidden_size=8, num_layers=2, num_heads=2, vocab_size=10,
                   lora_linears=((8, 8), (8, 16)))


def test_lora_params_are_r_times_in_plus_out():
    assert SHAPE.lora_params(2) == 2 * (8 + 8) + 2 * (8 + 16) == 80


def test_lora_bf16_eager_by_hand():
    est = estimate_memory(SHAPE, MemoryEstimateConfig(batch_size=1, seq_len=4, precision="bf16", method="lora",
                                                      lora_rank=2, optimizer="adamw_32bit", attention="eager"))
    assert est.trainable_params == 80
    assert est.weights == 1000 * 2 + 80 * 2
    assert est.gradients == 80 * 2
    assert est.optimizer == 80 * 8
    # per layer: 34·h·b·s + 5·a·b·s² = 34·8·1·4 + 5·2·1·16 = 1088 + 160; two layers
    assert est.activations == 2 * (1088 + 160)
    assert est.logits == 1 * 4 * 10 * 4
    assert est.total == 2160 + 160 + 640 + 2496 + 160


def test_flash_attention_drops_the_quadratic_term():
    cfg = dict(batch_size=1, seq_len=4, precision="bf16", method="lora", lora_rank=2)
    assert estimate_memory(SHAPE, MemoryEstimateConfig(attention="flash", **cfg)).activations == 2 * 1088
    assert estimate_memory(SHAPE, MemoryEstimateConfig(attention="sdpa", **cfg)).activations == 2 * 1088


def test_gradient_checkpointing_keeps_layer_inputs_plus_one_layer():
    est = estimate_memory(SHAPE, MemoryEstimateConfig(batch_size=1, seq_len=4, precision="bf16", lora_rank=2,
                                                      attention="eager", gradient_checkpointing=True))
    assert est.activations == 2 * 2 * 8 * 1 * 4 + (1088 + 160)


def test_full_fp32_with_8bit_adam():
    est = estimate_memory(SHAPE, MemoryEstimateConfig(batch_size=1, seq_len=4, precision="fp32", method="full",
                                                      optimizer="adamw_8bit", attention="sdpa"))
    assert (est.weights, est.gradients, est.optimizer) == (4000, 4000, 2000)
    assert est.activations == 2 * 2 * 1088  # fp32 activations are twice the 16-bit formula


def test_qlora_base_is_four_bit_with_double_quant():
    est = estimate_memory(SHAPE, MemoryEstimateConfig(batch_size=1, seq_len=4, precision="bf16", method="qlora",
                                                      lora_rank=2, optimizer="paged_adamw_8bit"))
    # only the Linear weights (8·8 + 8·16 = 192) are NF4; the other 808 parameters stay bf16
    assert est.weights == pytest.approx(192 * (0.5 + 0.127 / 8) + 808 * 2 + 160)
    assert est.optimizer == 80 * 2
    assert any("Paged" in n for n in est.notes) and any("NF4" in n for n in est.notes)


@pytest.mark.parametrize("field", ["batch_size", "seq_len", "lora_rank"])
def test_invalid_inputs_name_the_field(field):
    with pytest.raises(ValueError, match=field):
        MemoryEstimateConfig(**{field: 0})


def test_chart_is_one_stacked_bar_per_component():
    est = estimate_memory(SHAPE, MemoryEstimateConfig(batch_size=1, seq_len=4))
    fig = memory_chart(est)
    assert [t.name for t in fig.data] == ["weights", "gradients", "optimizer states", "activations", "logits"]
    assert fig.layout.barmode == "stack"
    assert sum(t.y[0] for t in fig.data) == pytest.approx(est.total / (1 << 30))


def test_model_shape_from_tiny_llama(tiny_store):
    shape = model_shape(tiny_store.current.model)
    # 2 layers × (q, k, v, o, gate, up, down) Linear layers; lm_head excluded.
    assert len(shape.lora_linears) == 14
    assert (32, 32) in shape.lora_linears and (32, 16) in shape.lora_linears  # k_proj: 2 KV heads × 8
    assert shape.hidden_size == 32 and shape.num_layers == 2 and shape.num_heads == 4


def test_qlora_keeps_tied_embeddings_and_norms_in_16_bit():
    """bitsandbytes quantizes the Linear layers only: the (tied) embeddings, norms and output head stay 16-bit."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    shape = model_shape(model)
    linear = sum(m.weight.numel() for n, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and n != "lm_head")
    assert shape.total_params == 50_592 and shape.quantized_params == linear == 18_432  # embeddings: 32,000
    est = estimate_memory(shape, MemoryEstimateConfig(precision="bf16", method="qlora", lora_rank=4))
    nf4 = 0.5 + 0.127 / 8
    assert est.weights == pytest.approx(linear * nf4 + (50_592 - linear) * 2 + est.trainable_params * 2)
    assert any("embeddings" in n and "bf16" in n for n in est.notes)


def test_qlora_quantizes_what_transformers_bitsandbytes_replaces():
    """The 4-bit count is what transformers' own bitsandbytes integration turns into Linear4bit (tied or not)."""
    bnb = pytest.importorskip("bitsandbytes")
    import torch
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM
    from transformers.integrations.bitsandbytes import replace_with_bnb_linear
    from transformers.quantizers.base import get_keys_to_not_convert

    for tied in (True, False):
        config = LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied)
        with torch.device("meta"):
            model = LlamaForCausalLM(config)
        shape = model_shape(model)
        replace_with_bnb_linear(model, modules_to_not_convert=get_keys_to_not_convert(model),
                                quantization_config=BitsAndBytesConfig(load_in_4bit=True))
        four_bit = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
        assert shape.quantized_params == four_bit > 0
