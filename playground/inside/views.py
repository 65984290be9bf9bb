"""What the Inside tab shows besides charts: the lens and attention summaries (each naming the prompt, model
and adapter it was computed on), token chips, table rows and the chat template sample.

Gradio-free: plain Markdown / HTML strings and lists of rows from the result dataclasses.
"""

from __future__ import annotations

import dataclasses
import html
import re
from typing import Any

from playground.fsutil import markdown_literal, one_line
from playground.inside.attention import AttentionResult
from playground.inside.lens import LensResult
from playground.inside.tokens import Prompt, TokenizeResult

TOKEN_HEADERS = ["position", "token", "id", "vocabulary piece", "characters", "special"]
SPECIAL_HEADERS = ["role", "token", "id", "times in the sample chat"]
_CHIP = ("border-radius: 3px; padding: 1px 4px; margin: 1px; display: inline-block; "
         "font-family: ui-monospace, monospace; font-size: 13px;")
_COLORS = ("#e0e7ff", "#dcfce7")  # alternate, so neighbouring tokens are told apart
_SPECIAL = "background: #fde68a; color: #92400e;"
QUOTE_CHARS = 80  # a longer prompt is cut in the summary's "computed for" line


def quoted(text: str) -> str:
    """The prompt on one line, cut to QUOTE_CHARS, with Markdown's special characters escaped."""
    return markdown_literal(one_line(text, QUOTE_CHARS))


def computed_on(prompt: Prompt, model_name: str, adapter: str | None) -> str:
    """Which prompt, model and adapter a result belongs to: after an edit or a model switch the page still
    says what the numbers on it are (the base model named too, not only an adapter)."""
    chat = " (in the chat template)" if prompt.chat else ""
    on = f"adapter **{markdown_literal(adapter)}**" if adapter else "the base model (no adapter)"
    model = f" · model `{model_name}`" if model_name else ""
    return f"Computed for “{quoted(prompt.text)}”{chat} · {on}{model}"


def lens_summary(result: LensResult) -> str:
    # The result's own sentence names only an adapter; the line below names the base too, so it is left off there.
    sentence = dataclasses.replace(result, adapter=None).summary()
    return f"{sentence}\n\n{computed_on(result.prompt, result.model_name, result.adapter)}."


def attention_summary(result: AttentionResult, layer: int, head: int) -> str:
    sentence = dataclasses.replace(result, adapter=None).summary(layer, head)
    return f"{sentence}\n\n{computed_on(result.prompt, result.model_name, result.adapter)}."


def token_chips_html(result: TokenizeResult) -> str:
    """Every token as a chip (alternating colours, special tokens in amber); hover shows id and piece."""
    chips = []
    for t in result.tokens:
        style = _SPECIAL if t.special else f"background: {_COLORS[t.position % 2]}; color: #111827;"
        title = html.escape(f"#{t.position} · id {t.token_id} · piece {t.piece!r}")
        chips.append(f'<span class="pg-inside-tok" title="{title}" style="{style} {_CHIP}">'
                     f"{html.escape(t.token)}</span>")
    return f'<div id="pg-inside-chips" style="line-height: 2;">{"".join(chips)}</div>'


def token_rows(result: TokenizeResult) -> list[list[Any]]:
    rows = []
    for t in result.tokens:
        span = "" if t.start is None else repr(result.text[t.start:t.end])
        rows.append([t.position, t.token, t.token_id, t.piece, span, "✓" if t.special else ""])
    return rows


def special_rows(result: TokenizeResult) -> list[list[Any]]:
    return [[s.role, s.token, s.token_id, s.in_template] for s in result.specials]


def template_html(result: TokenizeResult) -> str:
    """The chat template rendered for a sample conversation, its special tokens highlighted."""
    note = f"<p><em>{html.escape(result.template_note)}</em></p>" if result.template_note else ""
    if not result.template:
        return note or "<p><em>This model has no chat template: it is a plain text model.</em></p>"
    used = sorted({s.token for s in result.specials if s.in_template and s.token}, key=len, reverse=True)
    pieces = re.split("(" + "|".join(map(re.escape, used)) + ")", result.template) if used else [result.template]
    text = "".join(f'<span style="{_SPECIAL} border-radius: 3px;">{html.escape(p)}</span>' if p in used
                   else html.escape(p) for p in pieces)
    return (f"{note}<p><b>The chat template for a sample conversation</b> (special tokens in amber):</p>"
            f'<pre style="white-space: pre-wrap; font-size: 12px;">{text}</pre>')
