"""What the Beam search tab says: best beam vs greedy reads better / equal / worse correctly, the text that is
continued is shown, and every column of the ranked table is on one scale."""

from __future__ import annotations

import math

import pytest

from playground.decode.beam import BeamResult, BeamSettings, RankedSequence, beam_search, length_score
from playground.decode.beam_report import FINAL_HEADERS, final_rows, summary_markdown, verdict_markdown
from playground.decode.charts import beam_tree_figure
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState, chosen_from_distribution
from playground.decode.views import api_beam_search, beam_view


def seq(ids, logprob, lp):
    return RankedSequence(token_ids=list(ids), text="".join(f"<{i}>" for i in ids),
                          score=length_score(logprob, len(ids), lp), sum_logprob=logprob)


def result(best, greedy, lp=1.0, beams=3):
    return BeamResult(settings=BeamSettings(beams, 5, lp), nodes=[], final=[best], greedy=greedy, context="Hi")


def test_better_equal_worse_are_three_different_sentences():
    better = result(seq([1, 2], -1.0, 1.0), seq([3, 4], -2.0, 1.0))
    assert better.beam_vs_greedy == "better" and better.beam_beats_greedy
    assert "**more probable** than greedy's" in verdict_markdown(better)

    # the same tokens, float32 noise apart: equal, and it must not read as a win (the bug: 0.01614 vs 0.01614)
    same = result(seq([1, 2, 3], -4.12650, 1.0), seq([1, 2, 3], -4.12651, 1.0))
    assert same.beam_vs_greedy == "equal" and not same.beam_beats_greedy
    text = verdict_markdown(same)
    assert "more probable" not in text and "**is** greedy's sequence" in text
    # different tokens, equally probable
    tie = result(seq([1, 2], -2.50000, 1.0), seq([3, 4], -2.50004, 1.0))
    assert tie.beam_vs_greedy == "equal" and "equally probable" in verdict_markdown(tie)

    # length penalty 2 prefers a long beam over greedy's short, more probable answer
    worse = result(seq([1, 2, 3, 4, 5, 6], -3.0, 2.0), seq([7, 8], -1.0, 2.0), lp=2.0)
    assert worse.beam_vs_greedy == "worse" and not worse.beam_beats_greedy
    text = verdict_markdown(worse)
    assert "Greedy's sequence is **more probable**" in text and "length penalty 2" in text
    assert "found a sequence" not in text
    # with length penalty 0 the score is the sum: a worse best beam means greedy's path was dropped
    pruned = result(seq([1, 2], -3.0, 0.0), seq([7, 8], -1.0, 0.0), lp=0.0, beams=2)
    assert pruned.beam_vs_greedy == "worse" and "keeps only 2 candidates per step" in verdict_markdown(pruned)


def test_close_values_are_printed_with_enough_digits_to_differ():
    close = result(seq([1], math.log(0.016142), 1.0), seq([2], math.log(0.016138), 1.0))
    assert close.beam_vs_greedy == "better"
    text = verdict_markdown(close)
    assert "**0.01614**" not in text.split("greedy:")[1]  # the two probabilities do not print alike
    assert "0.016142" in text and "0.016138" in text


def test_table_columns_share_one_scale_for_beams_and_greedy():
    r = result(seq([1, 2, 3, 4, 5], -4.0, 1.0), seq([6, 7, 8, 9, 10], -4.5, 1.0))
    rows = final_rows(r)
    assert len(FINAL_HEADERS) == len(rows[0]) and rows[-1][0] == "greedy"
    for row, s in zip(rows, [r.final[0], r.greedy]):
        assert row[2] == 5 and row[4] == pytest.approx(s.sum_logprob) and row[5] == pytest.approx(s.sum_logprob / 5)
        assert float(row[3]) == pytest.approx(math.exp(s.sum_logprob), rel=1e-3)


def test_equal_on_the_bundled_model_reads_as_equal(bundled_store):
    svc = DecodeService(bundled_store)
    out = api_beam_search(svc, "The capital of France is", False, BeamSettings(2, 2, 1.0))
    assert out["sequences"][0]["text"] == out["greedy"]["text"] == " Paris."
    assert out["beam_vs_greedy"] == "equal" and out["beam_beats_greedy"] is False
    assert out["continues"] == "The capital of France is"
    # greedy's score is on the beams' scale (sum / tokens^lp), not the plain sum
    assert out["greedy"]["score"] == pytest.approx(out["sequences"][0]["score"], abs=1e-4)
    better = api_beam_search(svc, "The capital of France is", False, BeamSettings(3, 5, 1.0))
    assert better["beam_vs_greedy"] == "better" and better["beam_beats_greedy"] is True


def test_the_summary_shows_the_text_continued_including_step_through_tokens(tiny_store):
    svc = DecodeService(tiny_store)
    state = StepState(prompt=svc.encode("Once upon a time", False))
    for _ in range(2):
        dist = svc.distribution(state.ids, SamplingSettings(temperature=0), state.session_id)
        state = state.append(chosen_from_distribution(dist, svc.tokenizer(), int(dist.order[0]), "greedy"))
    summary, figure, rows = beam_view(svc, state, BeamSettings(2, 3, 1.0))
    shown = svc.tokenizer().decode(list(state.ids))
    assert "the prompt plus the 2 tokens chosen in *Next token*" in summary and shown in summary
    root = [a for a in figure.layout.annotations if a.xanchor == "right"]
    assert len(root) == 1 and root[0].text.endswith(shown[-10:].replace("<", "&lt;"))
    fresh, _, _ = beam_view(svc, StepState(prompt=state.prompt), BeamSettings(2, 3, 1.0))
    assert "(the prompt)" in fresh


def test_tree_labels_sit_above_the_lines_on_a_box(tiny_store):
    with tiny_store.use() as lm:
        ids = list(lm.tokenizer("The rain in Spain")["input_ids"])
        r = beam_search(lm, ids, BeamSettings(3, 4, 1.0))
    fig = beam_tree_figure(r)
    labels = [a for a in fig.layout.annotations if a.xanchor == "left"]
    assert len(labels) == len(r.nodes) and all(a.bgcolor for a in labels)  # annotations draw above every trace
    assert all(t.mode in ("lines", "markers") for t in fig.data)  # no trace text the best-beam line could cover
    assert "The rain in Spain" in summary_markdown(r)
    assert "· beam width 3, 4 steps, length penalty 1:" in summary_markdown(r)  # the settings it ran with
