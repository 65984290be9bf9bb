"""The Pig Latin rule used by the bundled "pig-latin" training recipe, plus scoring helpers."""

from __future__ import annotations

import difflib
import re

VOWELS = frozenset("aeiou")
# A token is a run of letters/digits, or a run of other non-space characters.
# (`[^\W_]` is "a word character that is not an underscore", i.e. a letter or digit.)
_TOKEN = re.compile(r"[^\W_]+|(?:[^\w\s]|_)+")


def _is_word(token: str) -> bool:
    """True for letter/digit tokens (words and numbers), False for punctuation runs."""
    return token[0].isalnum()


def _translate_token(token: str) -> str:
    if not _is_word(token) or token.isdigit():
        return token  # punctuation and numbers stay unchanged
    if token[0] in VOWELS:
        return token + "way"
    for i, ch in enumerate(token):
        if ch in VOWELS:
            return token[i:] + token[:i] + "ay"
    return token + "ay"  # no vowel at all


def to_pig_latin(text: str) -> str:
    """Translate `text` to Pig Latin.

    The rule:

    * the text is lowercased and split into tokens: runs of letters/digits, or runs of
      other non-space characters (punctuation);
    * a word starting with a vowel (a, e, i, o, u) gets "way": "on" -> "onway";
    * otherwise everything before the first vowel moves to the end, followed by "ay":
      "smooth" -> "oothsmay";
    * a word with no vowel gets "ay": "rhythm" -> "rhythmay", "my" -> "myay";
    * numbers (tokens made only of digits) stay unchanged: "42" -> "42";
    * tokens are joined with single spaces, except that a punctuation token attaches to
      the token before it: "planks ." -> "anksplay.".

    Edge cases, decided here:

    * "y" is always a consonant ("yellow" -> "ellowyay", "my" -> "myay");
    * a token mixing letters and digits is a word, and digits count as consonants:
      "3d" -> "3day", "mp3" -> "mp3ay", "4ever" -> "ever4ay";
    * only a, e, i, o, u are vowels; other letters (including accented ones) are
      consonants;
    * an apostrophe splits a word, and the piece after it is a word of its own:
      "don't" -> tokens "don", "'", "t" -> "onday' tay";
    * punctuation at the very start of the text has nothing to attach to, so it attaches
      to the token after it instead: '"hi," she said' -> '"ihay," eshay aidsay';
    * runs of whitespace (spaces, tabs, newlines) collapse to single spaces, and leading
      or trailing whitespace disappears; the empty string stays empty.
    """
    out = ""
    seen_word = False  # False while `out` is empty or only leading punctuation
    for token in _TOKEN.findall(text.lower()):
        if _is_word(token):
            if seen_word:
                out += " "
            seen_word = True
        out += _translate_token(token)
    return out


def word_accuracy(prediction: str, reference: str) -> float:
    """Fraction of reference words matched exactly, position by position.

    Both strings are split on whitespace; an empty reference scores 1.0 against an empty
    prediction and 0.0 otherwise.
    """
    ref = reference.split()
    pred = prediction.split()
    if not ref:
        return 1.0 if not pred else 0.0
    return sum(p == r for p, r in zip(pred, ref)) / len(ref)


def rule_accuracy(prediction: str, reference: str) -> float:
    """Positional word matches over the longer of the two: like `word_accuracy`, but words after the
    translation count against the answer as missing ones do (a reward that ignored them taught GRPO runs to
    ramble on to the length limit)."""
    ref, pred = reference.split(), prediction.split()
    if not ref:
        return 1.0 if not pred else 0.0
    return sum(p == r for p, r in zip(pred, ref)) / max(len(ref), len(pred))


def aligned_accuracy(prediction: str, reference: str) -> float:
    """Words matched in order (difflib's matching blocks) over the longer of the two: like `rule_accuracy`, but a
    dropped or invented word costs only itself, not every word after it. So it tells better-translated answers
    from answers that merely have the right number of words, which the positional count also rewards."""
    ref, pred = reference.split(), prediction.split()
    if not ref:
        return 1.0 if not pred else 0.0
    matched = difflib.SequenceMatcher(a=pred, b=ref, autojunk=False).get_matching_blocks()
    return sum(block.size for block in matched) / max(len(ref), len(pred))


def exact_match(prediction: str, reference: str) -> bool:
    """True when the two strings are equal after stripping surrounding whitespace."""
    return prediction.strip() == reference.strip()
