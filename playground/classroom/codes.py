"""Room codes, the cleaning of what students type (names, guesses) and matching a guess to a candidate token.

Gradio-free. Every refusal is a sentence naming the field, raised as ValueError.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Container, Sequence
from dataclasses import dataclass

# Read aloud or off a projector: no 0/O, 1/I/L look-alikes. 31 symbols, 4 long: ~920 000 codes.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 4
MAX_NAME = 40    # characters kept of a student's name
MAX_GUESS = 50   # characters kept of a typed guess (a token is rarely longer than a word)
SPACE_MARK = "␣"  # how the app shows a token's leading space (decode/tokens.py `visible`)


@dataclass(frozen=True)
class Candidate:
    """One of the model's top tokens for the current round."""

    token_id: int
    text: str    # what the token decodes to, e.g. " plain"
    label: str   # the same with visible whitespace, e.g. "␣plain": what the pick list shows
    prob: float  # the model's own probability (softmax of its logits)


def new_code(taken: Container[str]) -> str:
    """A fresh random code not in `taken` (random, so codes cannot be guessed from one another)."""
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


def clean_code(code: object) -> str:
    """A typed code as stored: case-insensitive, spaces and dashes ignored ("k7q-x" -> "K7QX")."""
    text = str(code or "").upper().replace(" ", "").replace("-", "")
    if not text:
        raise ValueError("The room code is empty: type the code shown on the presenter's screen.")
    if len(text) != CODE_LENGTH or any(ch not in ALPHABET for ch in text):
        raise ValueError(f"The room code must be {CODE_LENGTH} letters or digits as shown on the presenter's "
                         f"screen (e.g. K7QX); got {str(code)[:20]!r}.")
    return text


def _printable(text: str, keep: int) -> str:
    """Control and format characters dropped (they could break the page or the chart), newlines as spaces. Cut
    first to a few times what is kept: a megabyte-long vote is not read character by character (under the
    hub's lock)."""
    text = text[:4 * keep].replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")


def clean_name(name: object) -> str:
    """An optional display name: trimmed, at most MAX_NAME characters; "" means anonymous."""
    if name is not None and not isinstance(name, str):
        raise ValueError(f"The name must be text; got {type(name).__name__}.")
    return _printable(name or "", MAX_NAME).strip()[:MAX_NAME].strip()


def clean_guess(guess: object, labels: Container[str] = ()) -> str:
    """A vote as typed or picked: at most MAX_GUESS characters; refused when empty. A pick from the list
    (one of the round's `labels`) is taken as it is, whitespace tokens ("␣", "↵") included."""
    if guess is not None and not isinstance(guess, str):
        raise ValueError(f"The vote must be text (a token from the list or one you type); got {type(guess).__name__}.")
    if guess in labels:
        return guess
    text = _printable(guess or "", MAX_GUESS)[:MAX_GUESS]
    words = text.replace(SPACE_MARK, " ").split()
    if not words:
        raise ValueError("The vote is empty: pick a token from the list or type your guess.")
    if len(words) > 1:  # the round asks for the next token: a phrase is no candidate the bars could show
        raise ValueError(f"Guess one next word, not {len(words)}: the model picks one token at a time.")
    return text


def fold(text: str) -> str:
    """The form guesses are compared in. Students cannot see (or type) a token's leading space and do not
    think about case, so "Plain", " plain" and "␣plain" are one guess: the space marks become spaces, then
    surrounding whitespace is stripped and the case folded."""
    return text.replace(SPACE_MARK, " ").strip().casefold()


def match(guess: str, candidates: Sequence[Candidate]) -> Candidate | None:
    """The candidate a vote is for. A pick from the list arrives as the candidate's exact label; anything else
    is a typed guess, compared after `fold`, and when two candidates fold alike (" The" and "the") the likelier one wins,
    because candidates come best first and the likelier token is the one a guesser most plausibly means.
    None: the guess is none of the model's top tokens (it still counts, under its folded text)."""
    for cand in candidates:
        if guess == cand.label:
            return cand
    folded = fold(guess)
    return next((c for c in candidates if fold(c.text) == folded), None)


def pick_list(candidates: Sequence[Candidate]) -> list[str]:
    """The students' choices: each label once, in alphabetical order (ignoring the space mark and case), so
    the order gives nothing away about which token the model prefers."""
    labels = list(dict.fromkeys(c.label for c in candidates))
    return sorted(labels, key=lambda label: (fold(label), label))
