"""What the Decode tab shows after a real browser walk found it misleading: a step before any distribution or with
an empty prompt (a sentence, no error marks, no stale numbers), a step after a prompt edit (the new prompt), the
beam view's settings and its greedy row, the stats' bases, a greedy pick's label and a tie's rank.

The tab's own handlers are called on a Decode tab built around the tiny Llama; what they return is what the page
shows (component by component)."""

from __future__ import annotations

import inspect
import math
import re

import gradio as gr
import pytest
import torch

from playground.adapters.session import AdapterChoice
from playground.decode.beam import BeamResult, BeamSettings, RankedSequence, length_score
from playground.decode.beam_report import final_rows, summary_markdown
from playground.decode.sampling import SamplingSettings, analyze, rank_of, top_rows
from playground.decode.session import ALTERNATIVES, DecodeService, StepState, chosen_from_distribution
from playground.decode.steps import choose
from playground.decode.strategies import strategy_runs
from playground.decode.text_view import branchable_text_html, hover_line
from playground.decode.tokens import prob_color
from playground.decode.views import distribution_view
from playground.decode.waterfall import waterfall_rows
from playground.services import Services
from playground.ui import session_adapter as sa

PARIS, COLOUR = "The capital of France is", "My favourite colour is"


@pytest.fixture()
def tab(tiny_store):
    """The Decode tab on its own: (demo, DecodeParts, the Decode service)."""
    from playground.ui import decode_tab

    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    with gr.Blocks() as demo:
        session, stamp = sa.new_state(), gr.State(services.stamp())
        parts = decode_tab.build(services, session, None, stamp)
    return demo, parts, services.decode


def _press(demo: gr.Blocks, elem_id: str, event: str = "click", **values) -> dict:
    """Run the listener of `elem_id`'s event with the components' current values (a value in `values`, keyed by
    elem_id, or "state", wins); its outputs by component. A generator's last yield is what stays shown."""
    block = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)
    (fn,) = [f for f in demo.fns.values() if [block._id, event] in [list(t) for t in f.targets]]
    args = []
    for comp in fn.inputs:
        key = "state" if isinstance(comp, gr.State) and comp.value is None else getattr(comp, "elem_id", None)
        args.append(values[key] if key in values else
                    sa.as_json(AdapterChoice()) if isinstance(comp, gr.State) else comp.value)
    out = fn.fn(*args)
    if inspect.isgenerator(out):
        out = list(out)[-1]
    if len(fn.outputs) > 1 and out == gr.skip():  # as Gradio reads it: one skip() leaves every output as it was
        out = (gr.skip(),) * len(fn.outputs)
    return dict(zip(fn.outputs, out if len(fn.outputs) > 1 else (out,)))


def _stepped(demo, prompt: str, st=None, button: str = "decode-greedy", **more) -> dict:
    return _press(demo, button, state=st, **{"decode-prompt": prompt}, **more)


# ---------------------------------------------------------------- 1. a step before any distribution

@pytest.mark.parametrize("button, more", [("decode-greedy", {}), ("decode-sample", {}),
                                          ("decode-generate", {"decode-n": 3}), ("decode-reset", {})])
def test_a_step_on_a_fresh_page_steps_from_the_prompt_in_the_box(tab, button, more):
    """The bug: Greedy / Sample before "Show next-token distribution" raised "Show a next-token distribution
    first." as an error over chart, table, candidates, text and waterfall."""
    demo, parts, _ = tab
    out = _stepped(demo, PARIS, None, button, **more)  # no gr.Error
    st = out[parts.state]
    assert st.prompt.text == PARIS and len(st.chosen) == {"decode-generate": 3, "decode-reset": 0}.get(button, 1)
    chart, stats, table, _, text, waterfall = (out[c] for c in parts.view_out[1:])
    assert chart is not None and waterfall is not None
    assert "**Entropy:**" in stats and len(table.value["data"]) == 20
    assert PARIS in text and text.count('class="pg-tok"') == len(st.chosen)
    assert out[parts.notice] == "" and "capital" in out[parts.template]


# ---------------------------------------------------------------- an empty prompt

@pytest.mark.parametrize("button", ["decode-greedy", "decode-sample", "decode-run", "decode-generate"])
def test_an_empty_prompt_is_a_sentence_and_leaves_no_numbers_as_if_current(tab, button):
    """The bug: an empty prompt put an Error mark over every view and left the last prompt's entropy and stats
    on screen under it."""
    demo, parts, _ = tab
    drawn = _press(demo, "decode-run", **{"decode-prompt": PARIS})
    assert "Entropy" in drawn[parts.view_out[2]]
    out = _stepped(demo, "   ", drawn[parts.state], button)
    assert out[parts.notice] == "⚠️ The prompt is empty: type some text first."
    st, chart, stats, table, candidates, text, waterfall = (out[c] for c in parts.view_out)
    assert st is None and chart is None and waterfall is None and stats == "" and text == ""
    assert table.value["data"] in ([], [[""] * len(table.value["headers"])]) and candidates.choices == []
    assert out[parts.template] == ""


# ---------------------------------------------------------------- 2. a step after the prompt was edited

def test_a_step_after_the_prompt_was_edited_starts_from_the_new_prompt_and_says_so(tab):
    """The bug: the prompt changed to "My favourite colour is" and Greedy appended to "The capital of France is
    Paris." with no notice."""
    demo, parts, _ = tab
    st = _press(demo, "decode-run", **{"decode-prompt": PARIS})[parts.state]
    for _ in range(2):
        st = _stepped(demo, PARIS, st)[parts.state]
    same = _stepped(demo, PARIS, st)  # the box unchanged: the built text goes on, nothing to say
    assert len(same[parts.state].chosen) == 3 and same[parts.notice] == ""
    assert same[parts.template] == gr.skip()  # the template stands

    out = _stepped(demo, COLOUR, st)
    new = out[parts.state]
    assert new.prompt.text == COLOUR and len(new.chosen) == 1 and new.ids[:len(new.prompt.ids)] == new.prompt.ids
    assert out[parts.notice] == ("The prompt was edited: this starts from the prompt “My favourite colour is” "
                                 "as it is now; the 2 tokens chosen after “The capital of France is” were dropped.")
    text = out[parts.view_out[5]]
    assert COLOUR in text and PARIS not in text and "favourite" in out[parts.template]


def test_a_prompt_quoted_in_the_notice_cannot_format_it(tab):
    demo, parts, _ = tab
    st = _press(demo, "decode-run", **{"decode-prompt": PARIS})[parts.state]
    note = _stepped(demo, "a *bold* [link](x)", st)[parts.notice]
    assert r"\*bold\* \[link\]\(x\)" in note


# ---------------------------------------------------------------- 3. beam search

def test_the_beam_view_says_the_sampling_settings_are_not_applied(tab):
    """The bug: temperature, top-p and the penalty stay visible above the Beam tab, which ignores them silently."""
    demo, parts, _ = tab
    out = _press(demo, "decode-run-beam", state=None, **{"decode-prompt": PARIS, "decode-beams": 2,
                                                           "decode-steps": 2})
    said = ("Beam search scores the model's raw log-probabilities: temperature, top-k, top-p, min-p, repetition "
            "penalty and *More samplers* are **not applied** here.")
    assert said in out[parts.beam_out[0]]
    beam_tab = [b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and "continues the text" in
                str(b.value)]
    assert len(beam_tab) == 1 and said in beam_tab[0]  # said before any run too
    greedy, beam, _ = strategy_runs(SamplingSettings(temperature=1.5, top_p=0.5), 2, 0)  # the comparison's rows
    assert "raw probabilities" in greedy.detail and "raw log-probabilities (no temperature" in beam.detail


def _seq(ids, logprob):
    return RankedSequence(token_ids=list(ids), text="".join(f"<{i}>" for i in ids),
                          score=length_score(logprob, len(ids), 1.0), sum_logprob=logprob)


def test_greedy_equal_to_a_beam_is_said_once_with_one_set_of_numbers():
    """The bug (an adapter in bf16): beam 3 "young woman with a beautiful" 0.000333 and the greedy row, the same
    tokens, 0.000347: two rows that read as two results."""
    beam3 = _seq([5, 6, 7], math.log(0.000333))
    greedy = _seq([5, 6, 7], math.log(0.000347))  # greedy's own pass: other float noise than generate()'s batch
    result = BeamResult(settings=BeamSettings(3, 3, 1.0), nodes=[], context="Hi", greedy=greedy,
                        final=[_seq([1, 2, 3], math.log(0.002)), _seq([1, 2, 4], math.log(0.001)), beam3])
    rows = final_rows(result)
    assert [r[0] for r in rows] == [1, 2, "3 = greedy", "greedy"]
    assert rows[3][1:] == rows[2][1:] and rows[3][3] == "0.000333"  # one sequence, one probability
    summary = summary_markdown(result)
    assert "Greedy's sequence is beam 3 in the table" in summary and "0.000347" not in summary


# ---------------------------------------------------------------- 4. what the stats are measured on

def test_each_stat_names_its_distribution_and_mass_kept_agrees_with_the_waterfall(tiny_store):
    """The bug: at T 1.5, top-p 0.5 the stats said "mass kept 50.0 %" (of the tempered distribution) while the
    waterfall said "85.7 % of the raw probability", neither naming what the other measured."""
    svc = DecodeService(tiny_store)
    state = StepState(prompt=svc.encode(PARIS, False))
    settings = SamplingSettings(temperature=1.5, top_k=0, top_p=0.5)
    view = distribution_view(svc, state, settings, 10)
    last = waterfall_rows(view.dist, svc.tokenizer(), 10)[-1]
    raw = f"{100 * last.raw_mass:.1f} % of the raw probability"
    tempered = f"{100 * view.dist.mass_kept:.1f} % of the distribution after temperature"
    assert f"**Probability mass kept:** {tempered} · {raw} ({view.dist.kept_count:,} tokens)" in view.stats
    assert re.search(r"\*\*Entropy:\*\* [\d.]+ bits, of the final distribution \(after filters\)", view.stats)
    assert "**Effective choices (2^entropy):** " in view.stats and ", of the final distribution" in view.stats
    plain = distribution_view(svc, state, SamplingSettings(top_k=5), 10)  # nothing reshaped: one number, raw
    raw_kept = float(plain.dist.raw_probs[plain.dist.kept].sum())
    assert f"**Probability mass kept:** {100 * raw_kept:.1f} % of the raw probability (5 tokens)" in plain.stats
    greedy = distribution_view(svc, state, SamplingSettings(temperature=0), 10).stats
    assert "bits, of the final distribution (one token at 100 %)" in greedy and "(1 token, greedy)" in greedy


# ---------------------------------------------------------------- 5. a greedy pick's label, a tie's rank

def test_a_greedy_pick_is_labelled_and_coloured_by_the_models_own_probability(tiny_store):
    """README: "greedy tokens: the model's own probability"; the bug: a Greedy press at T 1.5 was headed and
    coloured by its tempered, filtered probability ("north: 4.2 % (rank 1, greedy; model's own 7.1 %)")."""
    svc = DecodeService(tiny_store)
    settings = SamplingSettings(temperature=1.5, top_k=20)
    st = choose(svc, StepState(prompt=svc.encode(PARIS, False)), settings, "greedy")
    c = st.chosen[0]
    assert abs(c.prob - c.raw_prob) > 1e-3  # the two bases differ here
    html = branchable_text_html(svc.tokenizer(), st)
    head = (f"{c.label}: {100 * c.raw_prob:.1f}%, the model's own (rank {c.rank}, greedy; {100 * c.prob:.1f}% "
            "after that step's settings)")
    assert f'aria-label="{head}"' in html.replace("&#x27;", "'")
    assert f"background: {prob_color(c.raw_prob)};" in html
    sampled = choose(svc, StepState(prompt=st.prompt), settings, "sampled", seed=1).chosen[0]
    assert f"background: {prob_color(sampled.prob)};" in branchable_text_html(
        svc.tokenizer(), StepState(prompt=st.prompt, chosen=(sampled,)))


def test_a_tied_tokens_rank_is_its_place_in_the_alternatives_list(tiny_store):
    """The bug: two tokens at the same probability were both "rank 1" though the list shows one of them second."""
    tokenizer = tiny_store.current.tokenizer
    logits = torch.full((len(tokenizer),), -20.0)
    logits[[300, 400]] = 5.0  # a tie at the top
    logits[500] = 4.0
    dist = analyze(logits, [1, 2, 3], SamplingSettings())
    listed = [r.token_id for r in top_rows(dist, tokenizer, ALTERNATIVES)]
    assert set(listed[:2]) == {300, 400}
    for place, tid in enumerate(listed[:3], start=1):
        assert rank_of(dist, tid) == place
        chosen = chosen_from_distribution(dist, tokenizer, tid, "picked")
        assert chosen.rank == place and [i for i in chosen.alternative_ids].index(tid) == place - 1
    second = chosen_from_distribution(dist, tokenizer, listed[1], "greedy")
    assert "(rank 2, tied, greedy" in hover_line(second)  # its equal probability, said, explains the order
    assert "tied" not in hover_line(chosen_from_distribution(dist, tokenizer, 500, "picked"))


@pytest.mark.parametrize("button", ["decode-run-beam", "decode-explore-run", "decode-compare-run"])
def test_beam_explore_and_compare_refuse_an_empty_prompt_with_a_toast_and_keep_their_views(tab, button):
    """A raised gr.Error put an "Error" mark over each of their outputs until the next run: now a warning toast,
    and every output is left as it was (gr.skip)."""
    demo, _, _ = tab
    warnings = []
    real = gr.Warning
    gr.Warning = lambda message, *a, **k: warnings.append(message)
    try:
        out = _press(demo, button, state=None, **{"decode-prompt": "  "})
    finally:
        gr.Warning = real
    assert warnings == ["The prompt is empty: type some text first."]
    assert out and all(v == gr.skip() for v in out.values())


def test_undo_with_nothing_added_says_so_and_undo_after_a_step_removes_it(tab, monkeypatch):
    """Undo before any token was added did nothing without a word; now a toast, every view left as it was."""
    demo, parts, _ = tab
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda message, *a, **k: warnings.append(message))
    drawn = _press(demo, "decode-run", **{"decode-prompt": PARIS})
    for st in (None, drawn[parts.state]):  # a fresh page; a prompt drawn but nothing added yet
        out = _press(demo, "decode-undo", state=st)
        assert out and all(v == gr.skip() for v in out.values())
    assert warnings == ["Nothing to undo: no token has been added after the prompt yet."] * 2
    stepped = _stepped(demo, PARIS, drawn[parts.state])
    assert len(stepped[parts.state].chosen) == 1
    undone = _press(demo, "decode-undo", state=stepped[parts.state])
    assert undone[parts.state].chosen == () and undone[parts.state].prompt.text == PARIS
    assert warnings == ["Nothing to undo: no token has been added after the prompt yet."] * 2
