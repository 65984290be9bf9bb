"""Beam search: the tree ranks beams like generate(), the course example, strategy comparison."""

from __future__ import annotations

import pytest
import torch

from playground.decode.beam import BeamSettings, beam_search, greedy_path, search, tree_from_steps
from playground.decode.charts import beam_tree_figure
from playground.decode.sampling import SamplingSettings
from playground.decode.session import encode_prompt
from playground.decode.strategies import compare_strategies, continuation_logprob


def prompt_ids(lm, text="The rain in Spain falls mainly in the"):
    return list(encode_prompt(lm.tokenizer, text, False, 400).ids)


@pytest.mark.parametrize("beams,steps,penalty", [(3, 4, 1.0), (2, 5, 0.0), (5, 3, 2.0)])
def test_tree_ranks_the_same_final_beams_as_generate(tiny_store, beams, steps, penalty):
    lm = tiny_store.current
    ids = prompt_ids(lm)
    settings = BeamSettings(beams, steps, penalty)
    (nodes, tree_final), final = search(lm, ids, settings)  # the tree by its rule; the beams generate() returned
    assert len(final) == beams
    assert [seq for seq, _ in tree_final] == [f.token_ids for f in final]
    for (_, score), f in zip(tree_final, final):
        assert score == pytest.approx(f.score, abs=1e-4)
        assert f.sum_logprob == pytest.approx(continuation_logprob(lm, ids, f.token_ids), abs=1e-3)
    # every step expands 2×B candidates; B go on, the rest are finished or pruned
    for step in range(1, steps + 1):
        column = [n for n in nodes if n.step == step]
        assert len(column) == 2 * beams
        if step < steps:
            assert sum(n.status == "kept" for n in column) == beams


def test_beam_width_one_is_greedy(tiny_store):
    lm = tiny_store.current
    ids = prompt_ids(lm)
    (nodes, tree_final), [one] = search(lm, ids, BeamSettings(1, 6, 1.0))
    greedy = greedy_path(lm, ids, 6)
    assert one.token_ids == greedy.token_ids == tree_final[0][0]
    assert one.sum_logprob == pytest.approx(continuation_logprob(lm, ids, one.token_ids), abs=1e-4)
    assert [n.token_id for n in nodes if n.status != "pruned"] == greedy.token_ids
    result = beam_search(lm, ids, BeamSettings(1, 6, 1.0))
    assert result.beam_vs_greedy == "equal" and all(n.on_greedy == n.on_best for n in result.nodes)
    assert greedy.sum_logprob == pytest.approx(continuation_logprob(lm, ids, greedy.token_ids), abs=1e-4)


def test_beam_search_result_marks_paths_and_draws_a_tree(tiny_store):
    with tiny_store.use() as lm:
        result = beam_search(lm, prompt_ids(lm), BeamSettings(3, 4, 1.0))
    best = [n for n in result.nodes if n.on_best]
    assert [n.token_id for n in sorted(best, key=lambda n: n.step)] == result.final[0].token_ids
    assert any(n.on_greedy for n in result.nodes)
    assert result.beam_vs_greedy in ("better", "equal", "worse")
    assert result.beam_beats_greedy == (result.beam_vs_greedy == "better")
    fig = beam_tree_figure(result)
    markers = [t for t in fig.data if t.mode == "markers" and t.name]
    assert sum(len(t.x) for t in markers) == len(result.nodes)
    assert {t.name for t in markers} >= {"kept beam", "finished hypothesis", "pruned"}


COURSE = {(): [0.0, 0.6, 0.4, 0.0, 0.0, 0.0], (1,): [0.0, 0.0, 0.0, 0.55, 0.45, 0.0],
          (2,): [0.0, 0.0, 0.0, 0.05, 0.05, 0.9]}  # the course's example: first A 0.6 / B 0.4; then 0.55 / 0.9


def course_steps(running: list[list[tuple[int, ...]]]) -> list:
    """What generate() records at each step for the course's model: the running rows (after the prompt token 0)
    and their next-token log-probabilities."""
    return [([[0, *gen] for gen in rows], (torch.tensor([COURSE[g] for g in rows]) + 1e-9).log()) for rows in running]


def test_course_example_beam_beats_greedy():
    labels = ["<s>", "A", "B", "x", "y", "z"]
    settings = dict(prompt_len=1, eos=set(), label=lambda i: labels[i])
    _, greedy = tree_from_steps(course_steps([[()], [(1,)]]), settings=BeamSettings(1, 2, 0.0), **settings)
    nodes, beam = tree_from_steps(course_steps([[(), ()], [(1,), (2,)]]), settings=BeamSettings(2, 2, 0.0),
                                  **settings)
    assert greedy[0][0] == [1, 3] and torch.tensor(greedy[0][1]).exp() == pytest.approx(0.33, abs=1e-6)
    assert beam[0][0] == [2, 5] and torch.tensor(beam[0][1]).exp() == pytest.approx(0.36, abs=1e-6)
    assert [(n.label, n.status) for n in nodes if n.step == 1][:2] == [("A", "kept"), ("B", "kept")]


def test_the_tree_is_what_generate_searched_with_its_own_scores(tiny_store):
    """The tree comes from generate()'s own beam search (its running beams and log-probs, recorded inside it),
    not from a second search: each kept node is a beam generate() ran on, and each node's log-prob is the
    model's own for that token after its path."""
    lm = tiny_store.current
    ids = prompt_ids(lm)
    (nodes, _), _ = search(lm, ids, BeamSettings(3, 4, 1.0))
    paths = {-1: []}
    for n in nodes:
        paths[n.node_id] = paths[n.parent] + [n.token_id]
    for n in [n for n in nodes if n.status == "kept"][:3] + [n for n in nodes if n.step == 4][:2]:
        assert n.cum_logprob == pytest.approx(continuation_logprob(lm, ids, paths[n.node_id]), abs=1e-3)


def test_strategy_comparison_uses_generate(tiny_store):
    lm = tiny_store.current
    ids = prompt_ids(lm, "Once upon a time")
    settings = SamplingSettings(temperature=1.0, top_k=20)
    rows = compare_strategies(lm, ids, settings, num_beams=3, max_new_tokens=6, seed=5)
    assert [r.name for r in rows] == ["Greedy", "Beam search", "Sampled"]
    assert rows[0].token_ids == greedy_path(lm, ids, 6).token_ids
    assert rows[1].token_ids == search(lm, ids, BeamSettings(3, 6, 1.0))[1][0].token_ids
    assert rows[1].sum_logprob >= rows[0].sum_logprob - 1e-4 or len(rows[1].token_ids) != len(rows[0].token_ids)
    again = compare_strategies(lm, ids, settings, num_beams=3, max_new_tokens=6, seed=5)
    assert again[2].token_ids == rows[2].token_ids  # fixed seed: same sample


@pytest.mark.parametrize("field,values", [("num_beams", (0, 3, 1.0)), ("num_beams", (9, 3, 1.0)),
                                          ("steps", (2, 0, 1.0)), ("length_penalty", (2, 3, "x"))])
def test_bad_beam_settings_name_the_field(field, values):
    with pytest.raises(ValueError, match=field):
        BeamSettings.from_values(*values)
