"""What the Compare tab says, derived from one state: the hint, the tuned column's label and the "what
changed" placeholder never contradict each other; the sampling note tells the truth about both tabs."""

from __future__ import annotations

import pytest

from playground.compare.chat import NO_ADAPTER_HINT, CompareSettings, CompareUpdate
from playground.compare.views import column_views, compare_header, settings_from_controls, settings_note
from playground.decode.sampling import SamplingSettings, generate_kwargs

NO_ADAPTER = "No adapter is active"


def test_header_with_an_active_adapter_never_says_there_is_none():
    h = compare_header("yoda")
    assert "adapter **yoda**" in h.hint and h.tuned_label == "Tuned: adapter yoda"
    assert "<code>yoda</code>" in h.placeholder
    assert NO_ADAPTER not in h.hint + h.tuned_label + h.placeholder


def test_header_without_an_adapter_says_so_everywhere():
    h = compare_header(None)
    assert h.hint == NO_ADAPTER_HINT and NO_ADAPTER in h.placeholder and "no adapter is active" in h.tuned_label


def test_header_names_the_adapter_of_earlier_answers():
    hist = {"tuned": ({"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hm.", "adapter": "yoda"})}
    assert "earlier" not in compare_header("yoda", hist).hint
    h = compare_header("pirate", hist)
    assert "adapter **pirate**" in h.hint and "came from **yoda**" in h.hint
    assert h.tuned_label == "Tuned: adapter pirate (earlier answers: yoda)"


def test_header_names_the_third_columns_adapter():
    assert "Third column" not in compare_header("yoda").hint
    assert compare_header("yoda", None, "pirate").hint.endswith("Third column: adapter **pirate**, same settings "
                                                                 "and seed.")
    assert "Third column: adapter **pirate**" in compare_header(None, None, "pirate").hint


def test_empty_adapter_choices_are_labelled_by_what_they_mean():
    """A dropdown's "" showed as an empty row with a check mark; each list now says what empty means there."""
    from playground.ui.session_adapter import NO_THIRD, THIS_BROWSERS, adapter_list

    update = adapter_list(["a", "b"], "gone", NO_THIRD)
    assert update["choices"] == [(NO_THIRD, ""), "a", "b"] and update["value"] == ""
    assert "value" not in adapter_list(["a"], "", THIS_BROWSERS) and "value" not in adapter_list(["a"], "a")
    assert adapter_list(["a"], "")["choices"][0] == ("(this browser's adapter)", "")


def test_columns_while_streaming_do_not_claim_no_adapter_before_the_turn_is_over():
    streaming = CompareUpdate(texts={"base": "Par"}, adapters={"base": None})
    (base, base_label), (tuned, tuned_label), (other, _) = column_views(streaming, {}, "Capital of France?")
    assert base[-1] == {"role": "assistant", "content": "Par"} and base_label == "Base (adapter disabled)"
    assert tuned == [{"role": "user", "content": "Capital of France?"}] and tuned_label == "Tuned"
    assert NO_ADAPTER_HINT not in str(tuned)
    tuned_running = CompareUpdate(texts={"base": "Paris.", "tuned": "Paris"}, adapters={"base": None, "tuned": "yoda"})
    assert column_views(tuned_running, {}, "Q")[1] == ([{"role": "user", "content": "Q"},
                                                       {"role": "assistant", "content": "Paris"}],
                                                      "Tuned: adapter yoda")


def test_columns_after_a_turn_without_adapter_explain_why():
    from playground.compare.chat import CompareResult

    done = CompareUpdate(texts={"base": "Paris."}, adapters={"base": None},
                         result=CompareResult(model="m", adapter=None, columns={}, changed=None))
    _, (tuned, label), (other, _) = column_views(done, {}, "Q")
    assert tuned[-1]["content"] == NO_ADAPTER_HINT and "no adapter is active" in label
    assert other == []  # no third adapter asked for: the column shows only its own history


def test_settings_note_names_the_values_and_the_difference_from_decode():
    d, decode = CompareSettings(), SamplingSettings()
    note = settings_note()
    assert f"temperature {d.sampling.temperature:g}" in note and f"top-p {d.sampling.top_p:g}" in note
    assert f"Decode tab's starting values (temperature {decode.temperature:g}, top-p {decode.top_p:g})" in note
    changed = settings_from_controls("", 0.5, 50, 1.0, 0, 1.0, 64, 3)
    note = settings_note(changed)
    assert "temperature 0.5 ·" in note and "seed 3" in note and "64 new tokens" in note and "Decode" not in note


def test_settings_note_at_temperature_0_says_greedy_not_sampling():
    """At temperature 0 generate() takes the argmax: top-k / top-p / min-p and the seed do nothing."""
    s = settings_from_controls("", 0, 50, 0.9, 0.1, 1.3, 128, 0)
    assert generate_kwargs(s.sampling)["do_sample"] is False
    note = settings_note(s)
    assert "samples" not in note and "greedily" in note and "repetition penalty 1.3" in note
    assert "top-k, top-p, min-p and the seed are unused" in note
    assert "top-k 50" not in note and "top-p 0.9" not in note and "min-p 0.1" not in note and "seed 0" not in note


def test_settings_from_controls_names_a_bad_field():
    with pytest.raises(ValueError, match="top_p"):
        settings_from_controls("", 0.7, 50, 1.5, 0, 1.0, 64, 0)


@pytest.mark.parametrize("emptied", [None, "", "  "])
def test_an_emptied_seed_box_is_a_sentence_not_a_silent_seed_0(emptied):
    # it used to fall back to the default seed 0 without a word, while Decode refused the same emptied box
    with pytest.raises(ValueError, match=r"^seed is empty: it must be a whole number from 0 to 4294967295\.$"):
        settings_from_controls("", 0.7, 50, 0.9, 0, 1.0, 64, emptied)
    with pytest.raises(ValueError, match=r"^max_new_tokens is empty"):
        settings_from_controls("", 0.7, 50, 0.9, 0, 1.0, None, 5)
    assert settings_from_controls("", 0.7, 50, 0.9, 0, 1.0, 64, "7").seed == 7


def _component(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_the_page_says_what_the_sliders_hold(tiny_store):
    """Built app: Compare's note matches Compare's sliders, and what it says about the Decode tab matches the
    Decode tab's sliders; the hint and the placeholder come from the same state."""
    from playground.services import Services
    from playground.ui.app_ui import build_app

    services = Services.create(tiny_store, tiny_store.settings.data_dir)
    demo = build_app(services)
    decode = SamplingSettings()
    assert _component(demo, "decode-temperature").value == decode.temperature
    assert _component(demo, "decode-top-p").value == decode.top_p
    d = CompareSettings()
    assert _component(demo, "pg-compare-temperature").value == d.sampling.temperature
    assert _component(demo, "pg-compare-top-p").value == d.sampling.top_p
    assert _component(demo, "pg-compare-settings-note").value == settings_note(d)
    h = compare_header(None)
    assert _component(demo, "pg-compare-hint").value == h.hint
    assert _component(demo, "pg-compare-diff").value == h.placeholder


def test_evaluation_chart_shows_accuracies_in_percent_like_the_table():
    from playground.compare.charts import metrics_figure
    from playground.compare.evaluation import EvalResult, Scores

    result = EvalResult("pig-latin", "tiny", 10, True, Scores("base", None, 2.0, 7.39, 0.25, 0.1),
                        Scores("tuned", "a", 1.0, 2.72, 0.873, 0.5), ["x"] * 10)
    fig = metrics_figure(result)
    table = result.table()
    for i, key in ((2, "word_accuracy"), (3, "exact_match")):
        bars = fig.data[i]
        assert list(bars.y) == pytest.approx([100 * getattr(result.base, key), 100 * getattr(result.tuned, key)])
        assert list(bars.text) == [table[0][2 + i], table[1][2 + i]]  # e.g. "87.3 %", the table's cell
    assert fig.layout.yaxis3.range == (0, 100) and fig.layout.yaxis3.ticksuffix == " %"
    assert list(fig.data[0].y) == [2.0, 1.0]  # loss keeps its own scale
