"""Text → tokens as the model sees them: readable token labels, the prompt encoding used by the lens and the
attention view, and the Tokens view (ids, byte-level pieces, count, the chat template's special tokens).

Gradio-free. Labels and prompt encoding are the Decode tab's own (decode.tokens, decode.session), so a token
reads the same in every tab; here a prompt that does not fit is refused instead of cut from the left.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from playground.decode.session import encode_prompt as encode_with_template
from playground.decode.tokens import special_ids, token_label
from playground.inside.checks import check_text
from playground.model.inspect import apply_sample_template

SAMPLE_CONVERSATION = [{"role": "system", "content": "You are a helpful assistant."},
                       {"role": "user", "content": "What is the capital of France?"},
                       {"role": "assistant", "content": "Paris."}]


@dataclass(frozen=True)
class Prompt:
    """The user's text as fed to the model (chat template applied when asked)."""

    text: str
    chat: bool
    fed_text: str
    ids: tuple[int, ...]
    labels: tuple[str, ...]


def encode_prompt(tokenizer: Any, text: Any, chat: bool, max_tokens: int, purpose: str) -> Prompt:
    """Tokenize like the Decode tab does; a prompt over max_tokens is refused with a sentence (not cut)."""
    text = check_text("prompt", text)
    encoded = encode_with_template(tokenizer, text, chat, max_tokens=1_000_000_000)  # nothing cut here
    fed, ids = encoded.fed_text, encoded.ids
    if len(ids) > max_tokens:
        raise ValueError(f"prompt is {len(ids):,} tokens long; {purpose} takes at most {max_tokens:,} tokens. "
                         "Shorten the prompt.")
    ids = tuple(int(i) for i in ids)
    return Prompt(text=text, chat=bool(chat), fed_text=fed, ids=ids,
                  labels=tuple(token_label(tokenizer, i) for i in ids))


@dataclass(frozen=True)
class TokenPiece:
    position: int
    token_id: int
    token: str            # readable label
    piece: str            # the vocabulary entry itself, e.g. 'ĠParis'
    special: bool
    start: int | None     # character span in the text (fast tokenizers), None otherwise
    end: int | None


@dataclass(frozen=True)
class SpecialToken:
    role: str             # bos / eos / pad / unk / template
    token: str
    token_id: int | None
    in_template: int      # how often it occurs in the rendered sample conversation


@dataclass(frozen=True)
class TokenizeResult:
    text: str
    tokens: tuple[TokenPiece, ...]
    specials: tuple[SpecialToken, ...]
    template: str         # the chat template rendered for a sample conversation ("" when there is none)
    vocab_size: int
    template_note: str = ""  # e.g. the template refuses a system turn, so the sample has none

    @property
    def count(self) -> int:
        return len(self.tokens)

    def summary(self) -> str:
        per = len(self.text) / max(1, self.count)
        return (f"**{self.count:,} tokens** for {len(self.text):,} characters ({per:.2f} characters per token) · "
                f"vocabulary of {self.vocab_size:,} tokens")

    def as_api(self) -> dict[str, Any]:
        return {"text": self.text, "count": self.count, "characters": len(self.text),
                "ids": [t.token_id for t in self.tokens], "tokens": [asdict(t) for t in self.tokens],
                "special_tokens": [asdict(s) for s in self.specials], "chat_template_sample": self.template,
                "chat_template_note": self.template_note, "vocab_size": self.vocab_size}


def _specials(tokenizer: Any, template: str) -> tuple[SpecialToken, ...]:
    """The named special tokens plus every special token the chat template uses, with template counts."""
    used: dict[int, int] = {}
    if template:
        specials = special_ids(tokenizer)
        for tid in tokenizer(template, add_special_tokens=False)["input_ids"]:
            if int(tid) in specials:
                used[int(tid)] = used.get(int(tid), 0) + 1
    out, seen = [], set()
    for role in ("bos", "eos", "pad", "unk"):
        token = getattr(tokenizer, f"{role}_token", None)
        if token:
            tid = tokenizer.convert_tokens_to_ids(token)
            out.append(SpecialToken(role, str(token), tid, used.get(tid, 0)))
            seen.add(tid)
    for tid, n in used.items():
        if tid not in seen:
            out.append(SpecialToken("template", tokenizer.convert_ids_to_tokens(tid), tid, n))
    return tuple(out)


def tokenize_text(tokenizer: Any, text: Any) -> TokenizeResult:
    """Split text into the model's tokens (with the tokenizer's own special tokens, as the Decode tab feeds it)."""
    text = check_text("text", text)
    try:
        enc = tokenizer(text, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError):  # slow tokenizers have no offsets
        enc, offsets = tokenizer(text), None
    ids = [int(i) for i in enc["input_ids"]]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    specials = special_ids(tokenizer)
    tokens = tuple(TokenPiece(position=i, token_id=tid, token=token_label(tokenizer, tid), piece=str(piece),
                              special=tid in specials,
                              start=None if offsets is None else int(offsets[i][0]),
                              end=None if offsets is None else int(offsets[i][1]))
                   for i, (tid, piece) in enumerate(zip(ids, pieces)))
    template, note = "", ""
    if getattr(tokenizer, "chat_template", None):
        template, note = apply_sample_template(tokenizer, SAMPLE_CONVERSATION)
    return TokenizeResult(text=text, tokens=tokens, specials=_specials(tokenizer, template), template=template,
                          vocab_size=len(tokenizer), template_note=note)
