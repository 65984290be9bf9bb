"""Words typed as text -> the token-id sequences SequenceBiasLogitsProcessor / NoBadWordsLogitsProcessor take.

Gradio-free. Entries are separated by commas or new lines. A word is matched as typed *and* with a leading
space (how it appears mid-sentence: "Paris" and "␣Paris" are different tokens), so banning "Paris" bans both.
A multi-token word is banned / biased on its last token, and only once the rest of it is already in the text
(that is how transformers applies sequence_bias and bad_words_ids). Mistakes raise a ValueError naming the
field, e.g. `sequence_bias: write each entry as word=bias, e.g. "Paris=-5, London=2"; got "Paris".`
"""

from __future__ import annotations

import re
from typing import Any

from playground.decode.checks import check_float
from playground.decode.settings import MAX_BIAS, MAX_SEQUENCES, TokenSeq
from playground.decode.tokens import token_label
from playground.fsutil import cut

MAX_WORD_TOKENS = 16
MAX_CHARS = 2000
_SPLIT = re.compile(r"[,\n]")


def eos_ids(tokenizer: Any, generation_config: Any = None) -> set[int]:
    """The end-of-text ids generate() stops on (the model's generation_config, else the tokenizer's)."""
    eos = getattr(generation_config, "eos_token_id", None)
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    return set() if eos is None else ({int(eos)} if isinstance(eos, int) else {int(e) for e in eos})


def _entries(name: str, text: Any) -> list[str]:
    if text is None:
        return []
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text; got {text!r}.")
    if len(text) > MAX_CHARS:
        raise ValueError(f"{name} is {len(text)} characters; at most {MAX_CHARS}.")
    return [e.strip() for e in _SPLIT.split(text) if e.strip()]


def word_sequences(name: str, tokenizer: Any, word: str) -> list[TokenSeq]:
    """The token ids of a word as typed and with a leading space (one sequence if they are the same, or
    if the word is a special token such as <|im_end|>)."""
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    seqs: list[TokenSeq] = []
    for text in (word,) if word in special else (word, " " + word):
        ids = tuple(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(ids) > MAX_WORD_TOKENS:
            raise ValueError(f"{name}: “{cut(word, 40)}” is {len(ids)} tokens; at most {MAX_WORD_TOKENS} a word.")
        if ids and ids not in seqs:
            seqs.append(ids)
    return seqs


def _limit(name: str, count: int) -> None:
    if count > MAX_SEQUENCES:
        raise ValueError(f"{name}: too many words ({count} token sequences; at most {MAX_SEQUENCES}).")


def parse_banned_words(tokenizer: Any, text: Any, eos: set[int] | None = None) -> tuple[TokenSeq, ...]:
    """Banned words, e.g. "Paris, London" -> their token sequences. The end-of-text token is refused:
    generate() never bans it (it drops it from bad_words_ids), so banning it would show a lie."""
    name, seqs = "banned_words", []
    for word in _entries(name, text):
        for seq in word_sequences(name, tokenizer, word):
            if len(seq) == 1 and seq[0] in (eos or set()):
                raise ValueError(f"{name}: “{word}” is the end-of-text token, which generate() never bans; "
                                 "remove it (use max new tokens to stop early instead).")
            if seq not in seqs:
                seqs.append(seq)
    _limit(name, len(seqs))
    return tuple(seqs)


def parse_sequence_bias(tokenizer: Any, text: Any) -> tuple[tuple[TokenSeq, float], ...]:
    """Biases, e.g. "Paris=-5, London=2.5" -> ((ids, -5.0), …): added to the logit of the word's last token.
    A later entry for the same word replaces an earlier one (as in transformers)."""
    name, pairs = "sequence_bias", {}
    for entry in _entries(name, text):
        word, sep, value = entry.rpartition("=")
        if not sep or not word.strip() or not value.strip():
            raise ValueError(f"{name}: write each entry as word=bias, e.g. “Paris=-5, London=2”; got “{entry}”.")
        bias = check_float(f"{name} of “{word.strip()}”", value.strip(), -MAX_BIAS, MAX_BIAS)
        for seq in word_sequences(name, tokenizer, word.strip()):
            pairs[seq] = bias
    _limit(name, len(pairs))
    return tuple(pairs.items())


def sequences_label(tokenizer: Any, seqs: Any, limit: int = 4) -> str:
    """A short readable list of token sequences, e.g. '␣Paris, Paris, … (+3)' (stage descriptions)."""
    seqs = list(seqs)
    shown = ["".join(token_label(tokenizer, t) for t in seq) for seq in seqs[:limit]]
    return ", ".join(shown) + (f", … (+{len(seqs) - limit})" if len(seqs) > limit else "")
