"""Inside the model: logit lens, attention and tokens on tiny random models of every family (fast)."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoTokenizer

from playground.inside.attention import MAX_ATTENTION_TOKENS, attn_implementation
from playground.inside.checks import MAX_TEXT_CHARS
from playground.inside.readout import UnsupportedModel, check_matches
from playground.inside.service import InsideService
from playground.inside.views import template_html
from playground.model.store import LoadedModel, LoadSettings, ModelStore
from tests.conftest import TINY_FAMILIES

# The tiny family configs of the model tests, plus OPT with a projection after its final norm.
FAMILIES = {**TINY_FAMILIES,
            "opt_projected": ("OPTConfig", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                                word_embed_proj_dim=16, max_position_embeddings=128))}
PROMPT = "The capital of France is Paris, and the capital of Spain is"


@pytest.fixture(scope="module")
def tokenizer(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def make_model(family: str, vocab: int, seed: int = 0, **extra):
    cls_name, kwargs = FAMILIES.get(family, (family, {}))
    config = getattr(transformers, cls_name)(vocab_size=vocab, **{**kwargs, **extra})
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def make_store(model, tokenizer, adapter: str | None = None) -> ModelStore:
    lm = LoadedModel(model=model, tokenizer=tokenizer, name="tiny", source="tiny", device=torch.device("cpu"),
                     dtype=torch.float32, quantization="none", fingerprint="x", checkpoint_dir=None,
                     active_adapter=adapter)
    return ModelStore(LoadSettings(), _current=lm)


def real_distribution(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lens_last_layer_is_the_real_next_token_distribution(family, tokenizer):
    model = make_model(family, len(tokenizer))
    svc = InsideService(make_store(model, tokenizer))
    result = svc.lens(PROMPT)
    layers = model.config.num_hidden_layers
    assert [layer.index for layer in result.layers] == list(range(layers + 1))
    assert result.layers[0].name == "embeddings" and result.layers[-1].name == f"layer {layers}"
    expected = real_distribution(model, result.prompt.ids)
    top_p, top_i = expected.topk(5)
    last = result.layers[-1].top
    assert [t.token_id for t in last] == top_i.tolist()
    assert [t.prob for t in last] == pytest.approx(top_p.tolist(), abs=1e-6)
    assert result.max_abs_diff < 1e-5
    # the grid's last column is the per-layer top-1 at the last position, over min(T, 24) positions
    assert len(result.grid) == layers + 1 and len(result.grid[0]) == len(result.positions) == len(result.prompt.ids)
    for layer, row in zip(result.layers, result.grid):
        assert row[-1].token_id == layer.top[0].token_id
        assert row[-1].prob == pytest.approx(layer.top[0].prob, abs=1e-5)
    api = result.as_api()
    assert set(api["layers"][-1]["top"][0]) == {"token", "token_id", "prob"}
    assert api["answer"]["token_id"] == top_i[0].item() and len(api["layers"]) == layers + 1


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt_projected", "falcon"])
def test_middle_layers_go_through_the_final_norm(family, tokenizer):
    """Layer i of the lens = softmax(head(final_norm(hidden_states[i]))) — the standard logit lens."""
    model = make_model(family, len(tokenizer))
    result = InsideService(make_store(model, tokenizer)).lens(PROMPT)
    with torch.no_grad():
        hidden = model(torch.tensor([result.prompt.ids]), output_hidden_states=True).hidden_states
        base = model.base_model
        norm = base.norm if family == "llama" else base.ln_f if family in ("gpt2", "falcon") else base.decoder.final_layer_norm
        x = norm(hidden[1][0, -1])
        if family == "opt_projected":
            x = base.decoder.project_out(x)
        probs = torch.softmax(model.get_output_embeddings()(x), -1)
    p, i = probs.topk(5)
    assert [t.token_id for t in result.layers[1].top] == i.tolist()
    assert [t.prob for t in result.layers[1].top] == pytest.approx(p.tolist(), abs=1e-6)


def test_longer_prompts_show_the_last_24_positions(tokenizer):
    svc = InsideService(make_store(make_model("llama", len(tokenizer)), tokenizer))
    result = svc.lens(" ".join(["word"] * 80))
    n = len(result.prompt.ids)
    assert result.positions == tuple(range(n - 24, n)) and all(len(row) == 24 for row in result.grid)
    assert "last 24 of" in result.summary()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_attention_rows_sum_to_one_are_causal_and_the_kernel_is_restored(family, tokenizer):
    model = make_model(family, len(tokenizer))
    store = make_store(model, tokenizer)
    before = attn_implementation(model)
    ids = tokenizer(PROMPT)["input_ids"]
    logits_before = real_distribution(model, ids)
    result = InsideService(store).attention(PROMPT)
    assert attn_implementation(model) == before == result.implementation  # the app keeps its fast kernel
    assert torch.allclose(real_distribution(model, ids), logits_before, atol=1e-6)
    n, heads = len(ids), model.config.num_attention_heads
    assert result.weights.shape == (model.config.num_hidden_layers, heads, n, n)
    assert torch.allclose(result.weights.sum(-1), torch.ones(1), atol=1e-5)
    assert float(result.weights.triu(1).abs().max()) == 0.0
    mean = result.matrix(2, 0)
    assert torch.allclose(mean, result.weights[1].mean(0)) and torch.allclose(result.matrix(2, 3), result.weights[1, 2])
    api = result.as_api(1, 0)
    assert [len(row) for row in api["weights"]] == list(range(1, n + 1))  # the causal triangle
    assert sum(t["weight"] for t in api["last_token"]) == pytest.approx(1.0, abs=1e-5)


def test_attention_under_a_peft_adapter_restores_the_base_kernel(tokenizer):
    from peft import LoraConfig, get_peft_model

    base = make_model("llama", len(tokenizer))
    plain = real_distribution(base, tokenizer(PROMPT)["input_ids"])
    torch.manual_seed(1)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "o_proj"],
                                           init_lora_weights=False)).eval()
    svc = InsideService(make_store(peft, tokenizer, adapter="random"))
    before = attn_implementation(peft)
    result = svc.attention(PROMPT)
    assert attn_implementation(peft) == before and result.adapter == "random"
    lens = svc.lens(PROMPT)
    tuned = real_distribution(peft, lens.prompt.ids)
    assert not torch.allclose(tuned.log(), plain.log(), atol=1e-3)  # the adapter changes the model …
    assert [t.prob for t in lens.layers[-1].top] == pytest.approx(tuned.topk(5).values.tolist(), abs=1e-6)  # … and the lens sees it


def test_layer_and_head_moves_reuse_the_cached_pass(tokenizer):
    store = make_store(make_model("llama", len(tokenizer)), tokenizer)
    svc = InsideService(store)
    svc.attention(PROMPT).as_api(1, 0)
    svc.attention_api(PROMPT, False, 2, 4)
    svc.lens(PROMPT)
    svc.lens(PROMPT)
    assert svc.model_calls == 2
    store.revision += 1  # a model / adapter change invalidates the cache
    svc.lens(PROMPT)
    assert svc.model_calls == 3


def test_bad_inputs_name_the_field(tokenizer):
    svc = InsideService(make_store(make_model("llama", len(tokenizer)), tokenizer))
    with pytest.raises(ValueError, match="prompt is empty"):
        svc.lens("   ")
    with pytest.raises(ValueError, match="prompt is too long: 20,000 characters"):
        svc.lens("a" * 20_000)
    with pytest.raises(ValueError, match="text is too long"):
        svc.tokenize("a" * (MAX_TEXT_CHARS + 1))
    with pytest.raises(ValueError, match="text is empty"):
        svc.tokenize("")
    with pytest.raises(ValueError, match="layer must be a whole number from 1 to 2; got 3"):
        svc.attention_api(PROMPT, False, 3, 0)
    with pytest.raises(ValueError, match=r"head must be a whole number from 0 to 4 \(0 = average"):
        svc.attention_api(PROMPT, False, 1, 5)
    with pytest.raises(ValueError, match="layer must be a whole number"):
        svc.attention(PROMPT).matrix(0, 0)
    with pytest.raises(ValueError, match=f"attention view takes at most {MAX_ATTENTION_TOKENS} tokens"):
        svc.attention(" ".join(["word"] * 300))
    assert svc.model_calls == 1  # refused before any forward pass


def test_unsupported_families_are_refused_with_a_sentence(tokenizer):
    # Gemma-2 soft-caps its logits: the plain read-out would not be the model's distribution.
    gemma = make_model("Gemma2Config", len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    with pytest.raises(UnsupportedModel, match=r"does not support this model family \(gemma2\): it caps or scales its logits"):
        InsideService(make_store(gemma, tokenizer)).lens(PROMPT)
    with pytest.raises(UnsupportedModel, match="other logits than the model itself"):
        check_matches(torch.zeros(8), torch.arange(8.0), gemma, torch.float32)  # the run-time net under every lens pass
    model = make_model("llama", len(tokenizer))
    del model.model.norm  # a read-out at no known place
    with pytest.raises(UnsupportedModel, match="final norm is not at a known place"):
        InsideService(make_store(model, tokenizer)).lens(PROMPT)


def test_tokens_round_trip_with_readable_labels(tokenizer):
    svc = InsideService(make_store(make_model("llama", len(tokenizer)), tokenizer))
    text = "The capital of France is Paris.\n\tnaïve 日本 🍕"
    result = svc.tokenize(text)
    ids = [t.token_id for t in result.tokens]
    assert ids == tokenizer(text)["input_ids"] and result.count == len(ids)
    assert tokenizer.decode(ids) == text
    assert [tokenizer.convert_tokens_to_ids(t.piece) for t in result.tokens] == ids
    covered = {i for t in result.tokens for i in range(t.start, t.end)}  # character spans (shared by byte pieces)
    assert covered | {i for i, ch in enumerate(text) if ch == " "} == set(range(len(text)))
    labels = [t.token for t in result.tokens]
    assert "␣capital" in labels and "↵" in "".join(labels) and any(lbl.startswith("\\x") for lbl in labels)
    roles = {s.role: s for s in result.specials}
    assert roles["bos"].token == "<|im_start|>" and roles["eos"].in_template > 0
    api = result.as_api()
    assert api["count"] == len(ids) and api["ids"] == ids and api["tokens"][1]["token"] == "␣capital"
    assert "<|im_start|>" in api["chat_template_sample"]


def test_tokens_view_survives_a_template_that_refuses_a_system_turn(smol_tokenizer_dir):
    from tests.test_inspect_model import NO_SYSTEM

    tokenizer = AutoTokenizer.from_pretrained(smol_tokenizer_dir)  # its own copy: the template is changed
    tokenizer.chat_template = NO_SYSTEM
    result = InsideService(make_store(make_model("llama", len(tokenizer)), tokenizer)).tokenize("hello")
    assert "<|im_start|>user" in result.template and "system" not in result.template
    assert "refuses a system turn" in result.as_api()["chat_template_note"]
    assert "refuses a system turn" in template_html(result)


def test_grid_table_and_summary_agree_on_the_last_layer_in_bf16(tokenizer):
    """The grid's last row re-read the last residual through norm + head, which rounds otherwise in bf16 than
    the model's own logits that the table and the summary show: the three disagreed on the final cell."""
    result = InsideService(make_store(make_model("llama", len(tokenizer)).to(torch.bfloat16), tokenizer)).lens(PROMPT)
    assert result.grid[-1][-1] == result.layers[-1].top[0] == result.answer
    # every layer's cell at the last position is the table's top-1 for that layer (not a re-rounded read-out)
    assert [row[-1] for row in result.grid] == [layer.top[0] for layer in result.layers]


def test_lens_summary_says_when_the_answer_first_enters_the_top_tokens():
    """The answer (id 9) is in the top 5 at layer 1, drops out at layer 2, is top-1 at layer 3: the summary may not
    claim it stays among the top 5 from layer 1."""
    from playground.inside.lens import LensLayer, LensResult, LensToken
    from playground.inside.tokens import Prompt

    def layer(i: int, ids: list[int]) -> LensLayer:
        return LensLayer(i, f"layer {i}", tuple(LensToken(f"t{t}", t, 0.1) for t in ids))

    layers = (layer(0, [1, 2, 3, 4, 5]), layer(1, [1, 2, 3, 4, 9]), layer(2, [1, 2, 3, 4, 5]),
              layer(3, [9, 1, 2, 3, 4]), layer(4, [9, 1, 2, 3, 4]))
    result = LensResult(Prompt("x", False, "x", (1,), ("x",)), layers, (0,), (), 0.0)
    summary = result.summary()
    assert "first enters the top 5 at layer 1" in summary and "among the top 5 from" not in summary


def test_lens_summary_names_row_zero_the_embeddings():
    """Row 0 of the lens is the embeddings in the table and heatmaps: the sentence may not call it "layer 0"."""
    from playground.inside.lens import LensLayer, LensResult, LensToken
    from playground.inside.tokens import Prompt

    layers = tuple(LensLayer(i, f"layer {i}", (LensToken("t9", 9, 0.5), LensToken("t1", 1, 0.1))) for i in range(4))
    summary = LensResult(Prompt("x", False, "x", (1,), ("x",)), layers, (0,), (), 0.0).summary()
    assert "top-1 at **the embeddings** (of 3 layers) and stays top-1 from the embeddings on" in summary
    assert "layer 0" not in summary
