"""Unit tests of the Pig Latin rule and the scoring helpers (playground/data/pig_latin.py)."""

import pytest

from playground.data.pig_latin import aligned_accuracy, exact_match, rule_accuracy, to_pig_latin, word_accuracy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the reference example
        (
            "The birch canoe slid on the smooth planks.",
            "ethay irchbay anoecay idslay onway ethay oothsmay anksplay.",
        ),
        # vowel start -> "way"
        ("apple", "appleway"),
        ("on it", "onway itway"),
        ("under", "underway"),
        # leading consonant cluster moves
        ("string", "ingstray"),
        ("chair", "airchay"),
        ("quiet", "uietqay"),
        # "y" is a consonant; no vowel at all -> "ay"
        ("rhythm", "rhythmay"),
        ("my", "myay"),
        ("yellow", "ellowyay"),
        ("shy", "shyay"),
        # numbers stay unchanged
        ("42", "42"),
        ("I have 3 cats", "iway avehay 3 atscay"),
        ("2024", "2024"),
        # tokens with a letter are words; digits count as consonants
        ("3d", "3day"),
        ("mp3", "mp3ay"),
        ("4ever", "ever4ay"),
        # punctuation attaches to the token before it
        ("Hello, world!", "ellohay, orldway!"),
        ("Is it 5?", "isway itway 5?"),
        ("Wait... what?!", "aitway... atwhay?!"),
        ("a - b", "away- bay"),
        # punctuation at the start attaches to the token after it
        ('"Hi," she said.', '"ihay," eshay aidsay.'),
        ("...well", "...ellway"),
        ("!!!", "!!!"),
        # apostrophes split words: "don", "'", "t"
        ("don't", "onday' tay"),
        ("It's late.", "itway' say atelay."),
        # whitespace collapses, case is lowered
        ("  the   big\tdog \n", "ethay igbay ogday"),
        ("THE BIG DOG", "ethay igbay ogday"),
        ("McDonald", "onaldmcday"),
        # empty input
        ("", ""),
        ("   ", ""),
    ],
)
def test_to_pig_latin(text: str, expected: str) -> None:
    assert to_pig_latin(text) == expected


def test_word_accuracy_counts_positional_matches() -> None:
    assert word_accuracy("ethay igbay ogday", "ethay igbay ogday") == 1.0
    assert word_accuracy("ethay igbay atcay", "ethay igbay ogday") == pytest.approx(2 / 3)
    assert word_accuracy("igbay ethay ogday", "ethay igbay ogday") == pytest.approx(1 / 3)
    assert word_accuracy("", "ethay igbay ogday") == 0.0


def test_word_accuracy_uses_reference_length() -> None:
    assert word_accuracy("ethay", "ethay igbay ogday igbay") == 0.25
    assert word_accuracy("ethay igbay ogday extra words", "ethay igbay") == 1.0


def test_rule_accuracy_counts_extra_words_against_the_answer() -> None:
    assert rule_accuracy("ethay igbay", "ethay igbay") == 1.0
    assert rule_accuracy("ethay igbay ogday extra words", "ethay igbay") == pytest.approx(2 / 5)
    assert rule_accuracy("ethay", "ethay igbay ogday igbay") == 0.25  # missing words, as word_accuracy
    assert rule_accuracy("", "") == 1.0 and rule_accuracy("ethay", "") == 0.0


def test_aligned_accuracy_charges_a_dropped_or_invented_word_only_itself() -> None:
    ref = "ethay igbay ogday atsay ownday"
    assert aligned_accuracy(ref, ref) == 1.0 == rule_accuracy(ref, ref)
    dropped = "ethay ogday atsay ownday"  # "igbay" left out: positionally only the first word still matches
    assert rule_accuracy(dropped, ref) == pytest.approx(1 / 5)
    assert aligned_accuracy(dropped, ref) == pytest.approx(4 / 5)
    invented = "ethay igbay extra ogday atsay ownday"  # one word too many: over the longer of the two, as the rule
    assert rule_accuracy(invented, ref) == pytest.approx(2 / 6)
    assert aligned_accuracy(invented, ref) == pytest.approx(5 / 6)
    # the right word count with wrong words: the positional count and the aligned one agree
    wrong = "ethay igway ogday atsway ownway"
    assert aligned_accuracy(wrong, ref) == rule_accuracy(wrong, ref) == pytest.approx(0.4)
    assert aligned_accuracy("igbay ethay", "ethay igbay") == 0.5  # in order: a swap keeps one of the two
    assert aligned_accuracy("", "") == 1.0 and aligned_accuracy("ethay", "") == 0.0 and aligned_accuracy("", ref) == 0.0


def test_word_accuracy_splits_on_any_whitespace() -> None:
    assert word_accuracy("  ethay\tigbay\n", "ethay igbay") == 1.0


def test_word_accuracy_is_case_sensitive() -> None:
    assert word_accuracy("Ethay igbay", "ethay igbay") == 0.5


def test_word_accuracy_empty_reference() -> None:
    assert word_accuracy("", "") == 1.0
    assert word_accuracy("   ", "") == 1.0
    assert word_accuracy("ethay", "") == 0.0
    assert word_accuracy("ethay", "  ") == 0.0


def test_exact_match() -> None:
    assert exact_match("ethay ogday.", "ethay ogday.") is True
    assert exact_match("  ethay ogday.\n", "ethay ogday.") is True
    assert exact_match("ethay ogday", "ethay ogday.") is False
    assert exact_match("Ethay ogday.", "ethay ogday.") is False
    assert exact_match("", "") is True
