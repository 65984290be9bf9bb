"""Showing tokens so people can read them: visible whitespace, decoded byte pieces, coloured text.

Gradio-free. Byte-level BPE tokenizers (GPT-2, SmolLM2, Qwen…) split one emoji or CJK character over
several tokens, each of which decodes alone to "�"; the label then shows the raw bytes (`\\xf0\\x9f`)
instead, while the running text is decoded incrementally so whole characters appear once complete.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # sentencepiece byte-fallback pieces
# Other control characters (C0, DEL, C1) would print blank or not at all: shown as `\xNN`, like partial bytes.
_VISIBLE = str.maketrans({**{chr(c): f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))},
                          " ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode table (byte-level BPE pieces -> raw bytes)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {char: byte for byte, char in bytes_to_unicode().items()}


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(getattr(backend, "decoder", None))


def token_bytes(tokenizer: Any, token_id: int) -> bytes | None:
    """The raw bytes a token stands for, when the tokenizer works on bytes; None otherwise."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if piece is None:
        return None
    match = _BYTE_FALLBACK.match(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    if _is_byte_level(tokenizer):
        table = _byte_decoder()
        if all(ch in table for ch in piece):
            return bytes(table[ch] for ch in piece)
    return None


def token_text(tokenizer: Any, token_id: int) -> str:
    """What one token decodes to on its own; partial UTF-8 bytes come back as `\\xNN` escapes."""
    text = tokenizer.decode([int(token_id)], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if "\ufffd" in text:
        raw = token_bytes(tokenizer, token_id)
        if raw is not None:
            return raw.decode("utf-8", errors="backslashreplace")
    return text


def visible(text: str) -> str:
    """Whitespace made visible: space ␣, newline ↵, tab ⇥, carriage return ␍, other control characters as
    `\\xNN`; an empty token shows as ∅."""
    return text.translate(_VISIBLE) if text else "∅"


def token_label(tokenizer: Any, token_id: int) -> str:
    """A readable label for one token, e.g. '␣Spain', '↵', '\\xf0\\x9f', '<|im_end|>'."""
    return visible(token_text(tokenizer, token_id))


def special_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's special tokens (named ones and added tokens marked special): the one set every
    view highlights and Compare trims from an answer's end."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}
    for tid, added in (getattr(tokenizer, "added_tokens_decoder", {}) or {}).items():
        if getattr(added, "special", False):
            ids.add(int(tid))
    return ids


def incremental_texts(tokenizer: Any, prefix_ids: Sequence[int], ids: Sequence[int]) -> list[str]:
    """The text each of `ids` adds after `prefix_ids`, decoded as a stream: a token that ends in the middle
    of a UTF-8 character adds "" and the token completing it adds the whole character."""
    context = list(prefix_ids[-8:])  # a few tokens of context are enough for a merge-free decode
    done = tokenizer.decode(context, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    out: list[str] = []
    pending = 0
    for tid in ids:
        context.append(int(tid))
        text = tokenizer.decode(context, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if text.endswith("\ufffd") and pending < 4:  # wait for the rest of the character
            out.append("")
            pending += 1
            continue
        out.append(text[len(done):] if text.startswith(done) else token_text(tokenizer, tid))
        done, pending = text, 0
    return out


def prob_color(p: float) -> str:
    """Background colour for a probability: red (unlikely) through amber to green (likely)."""
    p = min(1.0, max(0.0, float(p)))
    return f"hsl({int(120 * p)}, 75%, {88 - 18 * p:.0f}%)"


@dataclass
class TextPiece:
    """One token of the built text with what the reader sees on hover."""

    text: str
    prob: float | None
    hover: str
    special: bool = False
    extra: dict = field(default_factory=dict)


def pieces_html(prompt_text: str, pieces: Sequence[TextPiece], elem_class: str = "pg-decode-text") -> str:
    """The prompt in grey followed by the chosen tokens, each coloured by its probability, with a hover title
    listing the alternatives at that step."""
    parts = [f'<div class="{elem_class}" style="font-family: ui-monospace, monospace; white-space: pre-wrap; '
             'line-height: 1.9; font-size: 14px;">',
             f'<span style="color: #6b7280;" title="prompt">{_html_text(prompt_text)}</span>']
    for i, piece in enumerate(pieces):
        bg = prob_color(piece.prob) if piece.prob is not None else "#e5e7eb"
        border = "border: 1px dashed #92400e;" if piece.special else ""
        shown = _html_text(piece.text) if piece.text else "&#8203;"
        parts.append(f'<span class="pg-tok" data-step="{i}" title="{html.escape(piece.hover)}" '
                     f'style="background: {bg}; color: #111827; border-radius: 3px; padding: 1px 0; {border}">'
                     f"{shown}</span>")
    parts.append("</div>")
    return "".join(parts)


def _html_text(text: str) -> str:
    """Escape for HTML, keeping newlines visible (↵ then a real line break)."""
    return html.escape(text).replace("\n", "↵\n")


def template_html(tokenizer: Any, fed_text: str, ids: Sequence[int], dropped: int = 0) -> str:
    """The exact string fed to the model and its tokens as chips (special tokens highlighted)."""
    chips = []
    special = special_ids(tokenizer)
    for tid in ids:
        label = html.escape(token_label(tokenizer, tid))
        style = ("background: #fde68a; color: #92400e;" if int(tid) in special
                 else "background: #e0e7ff; color: #1e1b4b;")
        chips.append(f'<span title="id {int(tid)}" style="{style} border-radius: 3px; padding: 1px 4px; '
                     f'margin: 1px; display: inline-block; font-family: ui-monospace, monospace;">{label}</span>')
    note = f"<p><b>{dropped} tokens were dropped from the left to fit the context.</b></p>" if dropped else ""
    return (f"{note}<p><b>String fed to the model</b> ({len(ids)} tokens):</p>"
            f'<pre style="white-space: pre-wrap; font-size: 12px;">{html.escape(fed_text)}</pre>'
            f"<p><b>Tokens</b> (hover for the id; special tokens in amber):</p><div>{''.join(chips)}</div>")


def colour_legend_html(what: str) -> str:
    """The key to the token colouring: the prob_color scale from 0 % to 100 %, and what the probability is."""
    stops = ", ".join(prob_color(p / 10) for p in range(11))
    return ('<div class="pg-legend" style="display: flex; align-items: center; gap: 8px; font-size: 12px; '
            'color: #374151; margin: 4px 0 6px;"><span style="white-space: nowrap;">0 %</span>'
            f'<span style="display: inline-block; width: 160px; height: 12px; border-radius: 3px; '
            f'background: linear-gradient(to right, {stops}); flex: none;"></span>'
            '<span style="white-space: nowrap;">100 %</span>'
            f"<span>{html.escape(what)}</span></div>")
