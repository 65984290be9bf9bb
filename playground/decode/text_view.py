"""The step-through text as HTML you can branch from: every chosen token, coloured by its probability,
opens a small menu on hover with the top alternatives at that step and "cut here".

Gradio-free. A menu entry carries `data-branch`, `data-step` (the token's index in the built text) and
`data-alt` (the alternative's index, -1 = cut before the token); the Decode tab's JS turns a click on one
into an event and decode/branch.py does the rest.
"""

from __future__ import annotations

import html
import math
from typing import Any

from playground.decode.session import ChosenToken, StepState
from playground.decode.tokens import colour_legend_html, incremental_texts, prob_color, special_ids

COLOUR_KEY = ("Each chosen token's background: the probability it had when chosen, in the distribution it was "
              "drawn from (after the filters; with temperature 0, the model's own after any repetition penalty); "
              "a token the Greedy button took: the model's own probability, as the argmax does not depend on "
              "temperature or the filters. Hover a token for the alternatives; click one to branch from there.")
EMPTY_HINT = ("<p style='color:#6b7280'>Click a candidate, or use Sample / Greedy / Generate, to append tokens."
              "</p>")
# Popup menus: shown while the token is hovered or focused (scoped to the gr.HTML by its css_template).
TEXT_CSS = """
.pg-tok { position: relative; cursor: pointer; }
.pg-alts { display: none; position: absolute; left: 0; top: 100%; z-index: 50; min-width: 270px;
  background: #ffffff; color: #111827; border: 1px solid #d1d5db; border-radius: 6px; padding: 6px;
  box-shadow: 0 4px 14px rgba(0,0,0,0.15); white-space: normal; font-size: 12px; line-height: 1.4; }
.pg-tok:hover > .pg-alts, .pg-tok:focus-within > .pg-alts { display: block; }
.pg-alts-head { display: block; margin-bottom: 4px; color: #374151; }
.pg-alt { display: block; width: 100%; text-align: left; border: 0; background: none; padding: 2px 4px;
  border-radius: 4px; font: inherit; font-family: ui-monospace, monospace; cursor: pointer; color: #111827; }
.pg-alt:hover { background: #e0e7ff; }
.pg-cut { color: #b91c1c; }
.pg-decode-text { padding-bottom: 0.5em; }
"""
# A click on a menu entry becomes a `select` event with {step, alt} (gr.HTML js_on_load; `trigger` is Gradio's).
TEXT_JS = """
element.addEventListener('click', (ev) => {
  const b = ev.target.closest('[data-branch]');
  if (!b || !element.contains(b)) return;
  ev.preventDefault(); ev.stopPropagation();
  if (document.activeElement) document.activeElement.blur();
  trigger('select', {step: Number(b.dataset.step), alt: Number(b.dataset.alt)});
});
"""


def _text(text: str) -> str:
    return html.escape(text).replace("\n", "↵\n")


def shown_prob(c: ChosenToken) -> float:
    """The probability a chosen token is coloured and headed by (README, Decode: "greedy tokens: the model's
    own probability"). The Greedy button's argmax is the same token at any temperature and filters, so their
    reshaped probability (4.2 % at T 1.5 for a token the model gives 7.1 %) would say something the choice
    never used; every other token: the probability it had where it was drawn or picked (`prob`)."""
    return c.raw_prob if c.how == "greedy" and math.isfinite(c.raw_prob) else c.prob


def _tied(c: ChosenToken) -> bool:
    """Another alternative at this step has exactly the token's probability (the list's order decides)."""
    ids = c.alternative_ids or (None,) * len(c.alternatives)
    return any(p == c.prob for (label, p), i in zip(c.alternatives, ids)
               if (i != c.token_id if i is not None else label != c.label))


def hover_line(c: ChosenToken) -> str:
    rank = f"rank {c.rank}{', tied' if _tied(c) else ''}"
    if c.how == "greedy" and math.isfinite(c.raw_prob):  # shown_prob: the model's own
        then = f"; {100 * c.prob:.1f}% after that step's settings" if abs(c.prob - c.raw_prob) >= 5e-4 else ""
        return f"{c.label}: {100 * c.raw_prob:.1f}%, the model's own ({rank}, greedy{then})"
    return f"{c.label}: {100 * c.prob:.1f}% ({rank}, {c.how}; model's own {100 * c.raw_prob:.1f}%)"


def _menu(i: int, c: ChosenToken) -> str:
    items = [f'<span class="pg-alts-head">{html.escape(hover_line(c))}<br>top alternatives at this step, after '
             "its settings — click one to branch here:</span>"]
    for j, (label, p) in enumerate(c.alternatives):
        mark = " ✓" if c.alternative_ids[j:j + 1] == (c.token_id,) or (not c.alternative_ids and label == c.label) \
            else ""
        items.append(f'<button type="button" class="pg-alt" data-branch data-step="{i}" data-alt="{j}">'
                     f"{j + 1}. {html.escape(label)}  {100 * p:.1f}%{mark}</button>")
    items.append(f'<button type="button" class="pg-alt pg-cut" data-branch data-step="{i}" data-alt="-1">'
                 "✂ cut the text before this token</button>")
    return f'<span class="pg-alts" role="menu">{"".join(items)}</span>'


def branchable_text_html(tokenizer: Any, state: StepState) -> str:
    """The prompt in grey, then the chosen tokens coloured by probability, each with its branch menu."""
    texts = incremental_texts(tokenizer, state.prompt.ids, [c.token_id for c in state.chosen])
    special = special_ids(tokenizer)
    prompt = state.prompt.text if not state.prompt.chat else state.prompt.fed_text
    parts = ['<div class="pg-decode-text" style="font-family: ui-monospace, monospace; white-space: pre-wrap; '
             'line-height: 1.9; font-size: 14px;">',
             f'<span style="color: #6b7280;" title="prompt">{_text(prompt)}</span>']
    for i, (text, c) in enumerate(zip(texts, state.chosen)):
        border = "border: 1px dashed #92400e;" if c.token_id in special else ""
        shown = _text(text) if text else "&#8203;"
        parts.append(f'<span class="pg-tok" data-step="{i}" tabindex="0" aria-label="{html.escape(hover_line(c))}" '
                     f'style="background: {prob_color(shown_prob(c))}; color: #111827; border-radius: 3px; '
                     f'padding: 1px 0; {border}">{shown}{_menu(i, c)}</span>')
    parts.append("</div>")
    body = "".join(parts)
    if not state.chosen:
        return body + EMPTY_HINT
    return colour_legend_html(COLOUR_KEY) + body
