"""Branch from anywhere: cut the step-through text at any token, go on with an alternative or a beam-tree
node, and get exactly what a fresh step-through to that prefix gives, with the KV cache reused."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from playground.decode.beam import BeamSettings
from playground.decode.branch import alternative_id, branch, cut, follow
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState
from playground.decode.steps import choose, generate_states
from playground.decode.text_view import branchable_text_html
from playground.decode.tokens import token_label
from playground.decode.views import beam_run

SETTINGS = SamplingSettings(temperature=0.7, top_k=40)
PROMPT = "The rain in Spain falls mainly in the"


def _built(svc: DecodeService, n: int = 6) -> StepState:
    st = StepState(prompt=svc.encode(PROMPT, False))
    for i in range(n):
        st = choose(svc, st, SETTINGS, "sampled", seed=i)
    return st


def _fresh(tiny_store, ids: tuple[int, ...]) -> tuple[DecodeService, StepState]:
    """A new service and a step-through built token by token to `ids` (picked), as a user would."""
    svc = DecodeService(tiny_store)
    st = StepState(prompt=svc.encode(PROMPT, False))
    for tid in ids[len(st.prompt.ids):]:
        st = choose(svc, st, SETTINGS, "picked", tid)
    return svc, st


def test_branch_to_an_alternative_equals_a_fresh_step_through(tiny_store):
    svc = DecodeService(tiny_store)
    st = _built(svc)
    alt = st.chosen[3].alternative_ids[2]
    fed = svc.tokens_fed
    new = branch(svc, st, SETTINGS, 3, 2)
    after = svc.distribution(new.ids, SETTINGS, new.session_id)  # what the tab shows next
    fed_branch = svc.tokens_fed - fed
    assert new.ids == st.ids[:len(st.prompt.ids) + 3] + (alt,)
    assert new.session_id == st.session_id and new.chosen[:3] == st.chosen[:3] and new.chosen[3].how == "branched"
    fresh_svc, fresh = _fresh(tiny_store, new.ids)
    mine, theirs = new.chosen[3], fresh.chosen[3]
    assert (mine.token_id, mine.rank, mine.alternative_ids) == (theirs.token_id, theirs.rank, theirs.alternative_ids)
    assert mine.prob == pytest.approx(theirs.prob, abs=1e-6) and mine.raw_prob == pytest.approx(theirs.raw_prob, abs=1e-6)
    expected = fresh_svc.distribution(fresh.ids, SETTINGS, fresh.session_id)
    assert torch.allclose(after.final_probs, expected.final_probs, atol=1e-5)
    # KV reuse: the branch fed only the new token (the prefix's logits were cached), a recompute feeds all
    assert fed_branch <= 2 < len(new.ids)


def test_cut_and_branch_after_an_eviction_still_reuse_the_kv_cache(tiny_store):
    svc = DecodeService(tiny_store, max_logits=1)  # no logits cached: every step goes through the KV cache
    st = _built(svc, 8)
    fed = svc.tokens_fed
    short = branch(svc, st, SETTINGS, 2)  # alt -1: cut before token #2
    assert short.ids == st.ids[:len(st.prompt.ids) + 2] and short.chosen == st.chosen[:2]
    svc.distribution(short.ids, SETTINGS, short.session_id)
    new = branch(svc, st, SETTINGS, 5, 1)
    svc.distribution(new.ids, SETTINGS, new.session_id)
    assert svc.tokens_fed - fed <= 6  # a full recompute of the two texts would feed ~2 × 16 tokens
    _, fresh = _fresh(tiny_store, new.ids)
    assert new.chosen[5].prob == pytest.approx(fresh.chosen[5].prob, abs=1e-6)


def test_branch_on_generated_tokens_and_on_tokens_without_recorded_ids(tiny_store):
    svc = DecodeService(tiny_store)
    st = StepState(prompt=svc.encode(PROMPT, False))
    for st in generate_states(svc, st, SETTINGS, 5, 0):
        pass
    assert len(st.chosen) == 5
    if st.chosen[2].alternative_ids:  # "Generate N" records the alternatives' ids too
        assert branch(svc, st, SETTINGS, 2, 1).ids[-1] == st.chosen[2].alternative_ids[1]
    # a token that recorded only labels: the alternative is found again among the best-ranked tokens there
    bare = replace(st, chosen=tuple(replace(c, alternative_ids=()) for c in st.chosen))
    label = bare.chosen[2].alternatives[1][0]
    tid = alternative_id(svc, bare, SETTINGS, 2, 1)
    assert token_label(svc.tokenizer(), tid) == label
    new = branch(svc, bare, SETTINGS, 2, 1)
    assert new.ids[-1] == tid and len(new.chosen) == 3


def test_continue_from_a_beam_tree_node(tiny_store):
    svc = DecodeService(tiny_store)
    st = _built(svc, 2)
    _, _, _, paths = beam_run(svc, st, BeamSettings(2, 3, 1.0))
    node = max(paths.paths, key=lambda n: (len(paths.paths[n]), n))  # a deep node
    assert paths.labels[node].startswith("step 3 · ")
    fed = svc.tokens_fed
    new = follow(svc, paths, SETTINGS, node, st)
    svc.distribution(new.ids, SETTINGS, new.session_id)
    assert new.ids == st.ids + paths.paths[node] and new.session_id == st.session_id
    assert [c.how for c in new.chosen[2:]] == ["beam"] * 3
    assert svc.tokens_fed - fed <= 4 < len(new.ids)  # one token per step on top of the cached text
    _, fresh = _fresh(tiny_store, new.ids)
    assert [c.prob for c in new.chosen] == pytest.approx([c.prob for c in fresh.chosen], abs=1e-6)


def test_text_menus_carry_every_branch_point(tiny_store):
    svc = DecodeService(tiny_store)
    st = _built(svc, 3)
    html = branchable_text_html(svc.tokenizer(), st)
    assert html.count('class="pg-tok"') == 3 and html.count('data-alt="-1"') == 3
    assert html.count("data-branch") == 3 * (len(st.chosen[0].alternatives) + 1)
    assert 'data-step="2" data-alt="4"' in html and "top alternatives" in html and "<script" not in html


def test_bad_branch_input_names_the_field(tiny_store):
    svc = DecodeService(tiny_store)
    st = _built(svc, 2)
    with pytest.raises(ValueError, match="branch step must be a whole number from 0 to 1"):
        branch(svc, st, SETTINGS, 5, 0)
    with pytest.raises(ValueError, match="alternative must be a whole number from 0 to 4"):
        branch(svc, st, SETTINGS, 1, 9)
    with pytest.raises(ValueError, match="Nothing to branch from"):
        branch(svc, st.reset(), SETTINGS, 0, 0)
    with pytest.raises(ValueError, match="Nothing to branch from"):
        branch(svc, None, SETTINGS, 0)
    with pytest.raises(ValueError, match="branch step"):
        cut(st, "x")
    _, _, _, paths = beam_run(svc, st, BeamSettings(2, 2, 1.0))
    with pytest.raises(ValueError, match="node"):
        follow(svc, paths, SETTINGS, 10_000, st)
    with pytest.raises(ValueError, match="Run beam search first"):
        follow(svc, None, SETTINGS, 0, st)
