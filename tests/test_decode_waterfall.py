"""The waterfall: one row per active stage, in generate()'s order, each row's numbers straight from its
transformers processor; words typed as text; the /next_token `stages` payload."""

from __future__ import annotations

import re

import pytest
import torch

from playground.decode.processors import ORDER, pipeline_stages
from playground.decode.sampling import SamplingSettings, analyze
from playground.decode.session import DecodeService, StepState
from playground.decode.views import api_next_token, distribution_view, settings_from_values
from playground.decode.waterfall import waterfall_rows
from playground.decode.waterfall_chart import STAGE_COLOR, waterfall_figure
from playground.decode.words import parse_banned_words, parse_sequence_bias

PROBS = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])


class _Tok:
    """Enough of a tokenizer for labels: id i decodes to 't<i>'."""

    all_special_ids: list[int] = []

    def decode(self, ids, **_):
        return "".join(f"t{i}" for i in ids)

    def convert_ids_to_tokens(self, i):
        return f"t{i}"


def test_rows_on_hand_made_logits():
    s = SamplingSettings(temperature=0.5, top_k=3, top_p=0.9)
    rows = waterfall_rows(analyze(PROBS.log(), [4], s), _Tok(), 5)
    assert [r.name for r in rows] == ["raw", "temperature", "top-k", "top-p"]
    raw, temp, top_k, top_p = rows
    assert raw.kept_count == 5 and raw.mass == 1.0 and raw.removed_ids == [] and raw.top[0].prob == pytest.approx(0.5)
    sharp = PROBS ** 2 / (PROBS ** 2).sum()  # T 0.5 squares the probabilities
    assert [t.prob for t in temp.top] == pytest.approx(sharp.tolist(), abs=1e-6) and temp.removed_count == 0
    assert [t.prob_in for t in temp.top] == pytest.approx(PROBS.tolist(), abs=1e-6)
    assert top_k.removed_ids == [3, 4] and top_k.kept_count == 3 and top_k.removed_count == 2
    assert top_k.mass == pytest.approx(float(sharp[:3].sum()), abs=1e-6)
    assert top_k.raw_mass == pytest.approx(0.85, abs=1e-6)
    assert [t.token for t in top_k.top] == ["t0", "t1", "t2", "t3", "t4"]  # a filter row ranks what came in
    kept = sharp[:3] / sharp[:3].sum()  # top-p 0.9 after top-k: 0.735 + 0.184 = 0.919 ≥ 0.9, so two stay
    assert top_p.removed_ids == [2] and top_p.kept_count == 2
    assert top_p.mass == pytest.approx(float(kept[:2].sum()), abs=1e-6)
    assert "top_k 3" in top_k.description and "0.9" in top_p.description and "÷ 0.5" in temp.description


def test_greedy_adds_the_argmax_row():
    rows = waterfall_rows(analyze(PROBS.log(), [0], SamplingSettings(temperature=0, repetition_penalty=3.0)),
                          _Tok(), 5)
    assert [r.name for r in rows] == ["raw", "penalty", "greedy"]
    assert rows[-1].kept_count == 1 and rows[-1].removed_count == 4 and rows[-1].top[0].token_id == 1
    assert "argmax" in rows[-1].description


def _settings(tokenizer, **kw):
    bias, banned = kw.pop("sequence_bias", ""), kw.pop("banned_words", "")
    return SamplingSettings(**kw, sequence_bias=parse_sequence_bias(tokenizer, bias),
                            bad_words_ids=parse_banned_words(tokenizer, banned, {tokenizer.eos_token_id}))


ALL_ON = dict(temperature=0.05, top_k=150, top_p=0.97, min_p=0.02, repetition_penalty=1.3, typical_p=0.97,
              epsilon_cutoff=2e-4, eta_cutoff=0.02, top_h=0.95, no_repeat_ngram_size=2,
              sequence_bias="plain=3, rain=-2", banned_words="mainly, in the")


def test_each_row_removes_exactly_what_its_processor_set_to_minus_inf(tiny_store):
    lm = tiny_store.current
    svc = DecodeService(tiny_store)
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the plain. The rain in Spain falls mainly in",
                                        False))
    settings = _settings(lm.tokenizer, **ALL_ON)
    dist = svc.distribution(state.ids, settings)
    rows = waterfall_rows(dist, lm.tokenizer, 50)
    assert [r.name for r in rows] == ["raw", *ORDER[:12]]  # every stage, generate()'s order
    ids = torch.tensor([state.ids])
    scores = svc.logits(state.ids)[None].clone()
    raw = scores.softmax(-1)[0]
    for stage, row in zip(pipeline_stages(settings), rows[1:]):  # fresh processors, run one by one here
        before = scores
        scores = stage.processor(ids, scores)
        gone = torch.isneginf(scores[0]) & ~torch.isneginf(before[0])
        alive = ~torch.isneginf(scores[0])
        assert row.removed_count == int(gone.sum()), stage.name
        assert row.removed_ids == [t.token_id for t in row.top if gone[t.token_id]], stage.name
        assert all(t.removed == bool(gone[t.token_id]) for t in row.top), stage.name
        assert row.kept_count == int(alive.sum()), stage.name
        assert row.mass == pytest.approx(float(before.softmax(-1)[0][alive].sum()), abs=1e-6), stage.name
        assert row.raw_mass == pytest.approx(float(raw[alive].sum()), abs=1e-6), stage.name
        assert [t.prob for t in row.top] == pytest.approx([float(scores.softmax(-1)[0][t.token_id]) for t in row.top],
                                                          abs=1e-7)
    assert rows[-1].kept_count == dist.kept_count
    assert any(r.removed_count for r in rows if r.name in ("no-repeat", "banned"))
    bias_row = rows[1]
    assert bias_row.name == "bias" and "␣plain +3" in bias_row.description


def test_view_and_api_carry_the_stages(tiny_store):
    svc = DecodeService(tiny_store)
    state = StepState(prompt=svc.encode("The rain in Spain falls mainly in the", False))
    settings = settings_from_values(svc, *ALL_ON.values())
    view = distribution_view(svc, state, settings, 12)
    names = [r.name for r in view.stages]
    assert names[0] == "raw" and len(names) == 13
    # the chart: one titled row per active stage, removed tokens in the stage's own colour
    titles = [a.text for a in view.waterfall.layout.annotations]
    assert len(titles) == 13 and all(t.startswith(f"<b>{i + 1}. {n}</b>") for i, (t, n) in enumerate(zip(titles, names)))
    removed_traces = [t for t in view.waterfall.data if t.name and t.name.startswith("removed by ")]
    assert removed_traces and all(t.marker.color == STAGE_COLOR[t.name[len("removed by "):]] for t in removed_traces)
    assert "tokens left" in titles[3] and "of its input kept" in titles[3]
    out = api_next_token(svc, "The rain in Spain falls mainly in the", False, settings, 5)
    assert [s["name"] for s in out["stages"]] == names and {"rows", "entropy_bits", "kept_count"} <= set(out)
    stage = out["stages"][7]
    assert {"name", "description", "kept_count", "mass", "raw_mass", "removed_count", "removed_ids", "top"} <= set(stage)
    assert len(stage["top"]) <= 5 and {"id", "token", "prob_in", "prob", "removed"} <= set(stage["top"][0])
    assert out["stages"][-1]["kept_count"] == out["kept_count"]


def test_default_settings_keep_todays_stages(tiny_store):
    svc = DecodeService(tiny_store)
    state = StepState(prompt=svc.encode("Hello", False))
    assert [r.name for r in distribution_view(svc, state, SamplingSettings(), 5).stages] == ["raw", "top-k"]
    assert waterfall_figure([]).layout.height > 0  # nothing to draw: still a figure


def test_words_become_token_sequences(tiny_store):
    tok = tiny_store.current.tokenizer
    banned = parse_banned_words(tok, "Paris,\n London , Paris", {tok.eos_token_id})
    ids = lambda text: tuple(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert banned == (ids("Paris"), ids(" Paris"), ids("London"), ids(" London"))
    bias = dict(parse_sequence_bias(tok, "Paris=-5, London=2.5, Paris=1"))  # the later Paris wins
    assert bias[ids(" Paris")] == 1.0 and bias[ids("London")] == 2.5
    assert parse_banned_words(tok, "  ", set()) == () and parse_sequence_bias(tok, "") == ()


@pytest.mark.parametrize("text,match", [
    ("Paris", r"sequence_bias: write each entry as word=bias"), ("Paris=lots", r"sequence_bias of “Paris” must be a number"),
    ("Paris=500", r"sequence_bias of “Paris” must be in \[-100, 100\]"), ("=3", "sequence_bias: write each entry"),
])
def test_bad_bias_text_names_the_field(tiny_store, text, match):
    with pytest.raises(ValueError, match=match):
        parse_sequence_bias(tiny_store.current.tokenizer, text)


def test_bad_banned_words_name_the_field(tiny_store):
    tok = tiny_store.current.tokenizer
    with pytest.raises(ValueError, match=re.escape("banned_words: “<|im_end|>” is the end-of-text token")):
        parse_banned_words(tok, "Paris, <|im_end|>", {tok.convert_tokens_to_ids("<|im_end|>")})
    with pytest.raises(ValueError, match="banned_words: “x{39}…” is 50 tokens; at most 16 a word"):
        parse_banned_words(tok, "x" * 200, set())
    with pytest.raises(ValueError, match="banned_words: too many words"):
        parse_banned_words(tok, ", ".join(f"word{i}" for i in range(40)), set())
    with pytest.raises(ValueError, match="banned_words must be text"):
        parse_banned_words(tok, 5, set())
    svc = DecodeService(tiny_store)
    with pytest.raises(ValueError, match="banned_words"):
        settings_from_values(svc, 1.0, 50, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0, "", tok.eos_token)


@pytest.mark.parametrize("temperature", [0.05, 0.0])
def test_generate_n_and_the_sampled_strategy_use_every_sampler(tiny_store, temperature):
    """'Generate N' (our processors handed to generate()) and generate(**generate_kwargs) agree token for
    token with every sampler on, and the strategy comparison's sampled row says which ones are on."""
    from playground.decode.strategies import strategy_runs
    from playground.decode.stream import GenerateRequest, generate_all

    lm = tiny_store.current
    settings = _settings(lm.tokenizer, **{**ALL_ON, "temperature": temperature})
    ids = list(tiny_store.current.tokenizer("The rain in Spain falls mainly in the plain. The rain")["input_ids"])
    tokens = generate_all(tiny_store, GenerateRequest(tuple(ids), settings, max_new_tokens=8, seed=3))
    input_ids = torch.tensor([ids])
    torch.manual_seed(3)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=8,
                            pad_token_id=lm.tokenizer.pad_token_id, **strategy_runs(settings, 2, 3)[2].kwargs)
    assert [t.token_id for t in tokens] == out[0, len(ids):].tolist()
    banned = {seq[0] for seq in settings.bad_words_ids if len(seq) == 1}
    assert not banned & {t.token_id for t in tokens}
    detail = strategy_runs(settings, 2, 3)[2].detail
    assert "no-repeat 2-gram" in detail and "banned sequences" in detail
