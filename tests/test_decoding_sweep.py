"""Every sampler at once: a randomised sweep of knob combinations whose final probabilities must equal
generate()'s output scores, all twelve knobs on in generate()'s order, and the newer knobs' validation.
The single filters on hand-made logits are in test_decoding.py."""

from __future__ import annotations

import pytest
import torch
from test_decoding import _generate_scores

from playground.decode.processors import ORDER, REMOVED_BY, pipeline_stages
from playground.decode.sampling import SamplingSettings, analyze, build_processors, generate_kwargs, next_logits
from playground.decode.session import encode_prompt

SWEEP_TEXT = "The rain in Spain falls mainly in the plain. The rain in Spain falls mainly in the"
SWEEP_WORDS = ["rain", "Spain", "plain", "falls mainly", "the", "in the", "mainly"]


def _random_knobs(rng) -> dict:
    """One random combination: every knob on about half the time, at a value that bites on the tiny model
    (its raw distribution is nearly flat, so low temperatures and small cutoffs matter)."""
    def maybe(value, off):
        return value if rng.random() < 0.5 else off
    log_uniform = lambda lo, hi: lo * (hi / lo) ** rng.random()  # noqa: E731
    return dict(
        temperature=0.0 if rng.random() < 0.15 else round(log_uniform(0.02, 2.0), 4),
        top_k=maybe(rng.randint(1, 300), 0), top_p=maybe(round(rng.uniform(0.2, 0.99), 3), 1.0),
        min_p=maybe(round(rng.uniform(0.01, 0.5), 3), 0.0),
        repetition_penalty=maybe(round(rng.uniform(0.6, 2.0), 3), 1.0),
        typical_p=maybe(round(rng.uniform(0.2, 0.99), 3), 1.0),
        epsilon_cutoff=maybe(log_uniform(1e-5, 0.05), 0.0), eta_cutoff=maybe(log_uniform(1e-4, 0.5), 0.0),
        top_h=maybe(round(rng.uniform(0.1, 1.0), 3), 0.0), no_repeat_ngram_size=maybe(rng.randint(1, 4), 0),
        sequence_bias=", ".join(f"{w}={rng.uniform(-8, 8):.2f}" for w in rng.sample(SWEEP_WORDS, rng.randint(0, 3))),
        banned_words=", ".join(rng.sample(SWEEP_WORDS, rng.randint(0, 2))),
    )


def _sweep_settings(tokenizer, knobs: dict) -> SamplingSettings:
    from playground.decode.words import parse_banned_words, parse_sequence_bias

    knobs = dict(knobs)
    bias, banned = knobs.pop("sequence_bias"), knobs.pop("banned_words")
    return SamplingSettings(**knobs, sequence_bias=parse_sequence_bias(tokenizer, bias),
                            bad_words_ids=parse_banned_words(tokenizer, banned, {tokenizer.eos_token_id}))


@pytest.mark.parametrize("case", range(30))
def test_every_sampler_equals_generate_output_scores_randomised(tiny_store, case):
    """30 seeded random combinations of all twelve knobs: the shown scores are generate()'s own, stage order
    and all (greedy: generate's processed scores and its argmax)."""
    import random

    lm = tiny_store.current
    knobs = _random_knobs(random.Random(1000 + case))
    settings = _sweep_settings(lm.tokenizer, knobs)
    ids = list(encode_prompt(lm.tokenizer, SWEEP_TEXT, False, 400).ids)
    d = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings)
    processed = d.trace[-1].scores if d.trace else d.logits
    for seed in (case, case + 1):
        scores, token = _generate_scores(lm, ids, settings, seed)
        assert torch.equal(torch.isneginf(scores), torch.isneginf(processed)), knobs  # the same tokens removed
        assert (scores.softmax(-1) - processed.softmax(-1)).abs().max() < 1e-6, knobs
        if settings.greedy:
            assert d.final_probs[token] == 1.0, knobs
        else:
            assert (scores.softmax(-1) - d.final_probs).abs().max() < 1e-6, knobs
            torch.manual_seed(seed)
            assert int(torch.multinomial(d.final_probs, 1)[0]) == token, knobs
    names = [t.stage.name for t in d.trace]
    assert names == sorted(names, key=ORDER.index)  # generate()'s order


def test_all_twelve_knobs_on_in_generate_order(tiny_store):
    lm = tiny_store.current
    knobs = dict(temperature=0.05, top_k=200, top_p=0.95, min_p=0.01, repetition_penalty=1.3, typical_p=0.95,
                 epsilon_cutoff=1e-4, eta_cutoff=0.01, top_h=0.9, no_repeat_ngram_size=2,
                 sequence_bias="plain=3, rain=-2", banned_words="mainly")
    settings = _sweep_settings(lm.tokenizer, knobs)
    assert [type(p).__name__ for p in build_processors(settings)] == [
        "SequenceBiasLogitsProcessor", "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor",
        "NoBadWordsLogitsProcessor", "TemperatureLogitsWarper", "TopHLogitsWarper", "TopKLogitsWarper",
        "TopPLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper", "EpsilonLogitsWarper", "EtaLogitsWarper"]
    ids = list(encode_prompt(lm.tokenizer, SWEEP_TEXT, False, 400).ids)
    d = analyze(next_logits(lm.model, ids, lm.device)[0], ids, settings)
    scores, _ = _generate_scores(lm, ids, settings)
    assert (scores.softmax(-1) - d.final_probs).abs().max() < 1e-6
    # the text ends in " the": no-repeat bans " plain" (" the plain" is already there), the banned words
    # remove " mainly", top-h keeps at most 100 tokens; each removed token names its stage
    removed = {REMOVED_BY[int(c)] for c in d.removed_by.unique()}
    assert {"no-repeat", "banned", "top-h"} <= removed
    plain, mainly = (lm.tokenizer(w, add_special_tokens=False)["input_ids"] for w in (" plain", " mainly"))
    assert REMOVED_BY[int(d.removed_by[plain[0]])] == "no-repeat" and len(plain) == 1
    assert REMOVED_BY[int(d.removed_by[mainly[0]])] == "banned" and len(mainly) == 1


def test_default_settings_add_no_new_stage():
    s = SamplingSettings()
    assert [stage.name for stage in pipeline_stages(s)] == ["top-k"]
    kw = generate_kwargs(s)
    assert kw["typical_p"] == 1.0 and kw["epsilon_cutoff"] == 0.0 and kw["eta_cutoff"] == 0.0
    assert kw["top_h"] is None and kw["no_repeat_ngram_size"] == 0
    assert kw["sequence_bias"] is None and kw["bad_words_ids"] is None


@pytest.mark.parametrize("field,kwargs", [
    ("typical_p", dict(typical_p=0)), ("typical_p", dict(typical_p=1.2)),
    ("epsilon_cutoff", dict(epsilon_cutoff=1.0)), ("epsilon_cutoff", dict(epsilon_cutoff=-0.1)),
    ("eta_cutoff", dict(eta_cutoff=1)), ("eta_cutoff", dict(eta_cutoff="x")),
    ("top_h", dict(top_h=1.5)), ("top_h", dict(top_h=-0.5)),
    ("no_repeat_ngram_size", dict(no_repeat_ngram_size=-1)), ("no_repeat_ngram_size", dict(no_repeat_ngram_size=2.5)),
    ("no_repeat_ngram_size", dict(no_repeat_ngram_size=21)),
    ("sequence_bias", dict(sequence_bias=(((5,), 500.0),))), ("sequence_bias", dict(sequence_bias=(((), 1.0),))),
    ("sequence_bias", dict(sequence_bias=((5, 1.0),))), ("bad_words_ids", dict(bad_words_ids=((-3,),))),
    ("bad_words_ids", dict(bad_words_ids=((),))),
])
def test_new_knobs_out_of_range_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=field):
        SamplingSettings(**kwargs)
    with pytest.raises(ValueError, match=field):
        SamplingSettings.from_values(1.0, 50, 1.0, 0.0, 1.0, **kwargs)


def test_new_knob_sentences():
    with pytest.raises(ValueError) as err:
        SamplingSettings(epsilon_cutoff=1)
    assert str(err.value) == "epsilon_cutoff must be in [0, 1) (0 = off); got 1."
    with pytest.raises(ValueError) as err:
        SamplingSettings(no_repeat_ngram_size=-1)
    assert str(err.value) == "no_repeat_ngram_size must be a whole number from 0 to 20 (0 = off); got -1."
