"""What the Compare tab shows, derived from one state (Gradio-free): the hint, the column labels, the
"what changed" placeholder, the chat columns while a turn streams, and the sampling note."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.compare.chat import NO_ADAPTER_HINT, CompareSettings, CompareUpdate, Message
from playground.compare.diff import placeholder_html
from playground.decode.sampling import SamplingSettings

BASE_LABEL = "Base (adapter disabled)"
COLUMN_LABELS = {"base": BASE_LABEL, "tuned": "Tuned", "other": "Other"}


@dataclass(frozen=True)
class CompareHeader:
    """Everything on the tab that names the active adapter, computed from the same value."""

    hint: str
    tuned_label: str
    placeholder: str


def earlier_adapters(histories: dict[str, tuple[Message, ...]] | None, active: str | None) -> list[str]:
    """Adapters (other than the active one) that wrote answers already shown in the tuned column."""
    names: list[str] = []
    for m in (histories or {}).get("tuned", ()):
        name = m.get("adapter")
        if m.get("role") == "assistant" and name and name != active and name not in names:
            names.append(name)
    return names


def compare_header(active: str | None, histories: dict[str, tuple[Message, ...]] | None = None,
                   other: str | None = None) -> CompareHeader:
    """The hint, the tuned column's label and the empty "what changed" panel for the active adapter; when the
    tuned column already holds answers of another adapter, both the hint and the label say so. `other`: the
    third column's adapter, which the hint names too."""
    earlier = earlier_adapters(histories, active)
    if not active:
        hint, label = NO_ADAPTER_HINT, "Tuned (no adapter is active)"
    else:
        hint = f"Left: the base model (adapter disabled). Right: adapter **{active}**. Same settings, same seed."
        label = f"Tuned: adapter {active}"
    if earlier:
        listed = ", ".join(f"**{n}**" for n in earlier)
        hint += f" The earlier answers in the right column came from {listed}; press Clear to start over."
        label += f" (earlier answers: {', '.join(earlier)})"
    if other:
        hint += f" Third column: adapter **{other}**, same settings and seed."
    return CompareHeader(hint, label, placeholder_html(active))


def shown(history: tuple[Message, ...] | list[Message], message: str | None = None,
          partial: str | None = None) -> list[dict[str, str]]:
    """Chatbot messages: the column's history (role/content only) plus the turn in progress."""
    msgs = [{"role": m["role"], "content": m["content"]} for m in history]
    if message is not None:
        msgs.append({"role": "user", "content": message})
        if partial is not None:
            msgs.append({"role": "assistant", "content": partial or "…"})
    return msgs


def column_views(update: CompareUpdate, histories: dict[str, tuple[Message, ...]],
                 message: str) -> list[tuple[list[dict[str, str]], str]]:
    """(messages, label) of the base, tuned and other columns for one streaming snapshot.

    A column that has not started yet shows the message waiting for its answer; only once the turn is over
    does a missing tuned column mean "no adapter is active".
    """
    views = []
    for col, label in COLUMN_LABELS.items():
        hist = histories.get(col, ())
        if col in update.adapters:
            name = update.adapters[col]
            views.append((shown(hist, message, update.texts.get(col)),
                          label if name is None else f"{label}: adapter {name}"))
        elif update.result is None:
            views.append((shown(hist, message), label))
        elif col == "tuned":
            views.append((shown(hist, message, NO_ADAPTER_HINT), compare_header(None).tuned_label))
        else:  # no third adapter was asked for
            views.append((shown(hist), label))
    return views


def settings_from_controls(system: Any, temperature: Any, top_k: Any, top_p: Any, min_p: Any, penalty: Any,
                           max_new: Any, seed: Any) -> CompareSettings:
    """The tab's setting controls, in their order, as one CompareSettings (ValueError names the field; an
    emptied seed box too, as in Decode, rather than a silent seed 0)."""
    return CompareSettings.from_dict({"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
                                      "repetition_penalty": penalty, "max_new_tokens": max_new, "seed": seed,
                                      "system_prompt": system or ""})


def settings_note(current: CompareSettings | None = None) -> str:
    """The sampling every column uses, in words, and how it differs from the Decode tab's starting point."""
    s = current or CompareSettings()
    p, d = s.sampling, SamplingSettings()  # SamplingSettings() = the Decode tab's starting values
    if p.greedy:  # generate() takes the argmax: no sampling, so the filters and the seed do nothing
        line = (f"Every column decodes greedily (temperature 0: the most likely token at every step) · repetition "
                f"penalty {p.repetition_penalty:g}, up to {s.max_new_tokens} new tokens; top-k, top-p, min-p and "
                "the seed are unused.")
    else:
        line = (f"Every column samples with temperature {p.temperature:g} · top-k {p.top_k} · top-p {p.top_p:g} · "
                f"min-p {p.min_p:g} · repetition penalty {p.repetition_penalty:g} · seed {s.seed}, up to "
                f"{s.max_new_tokens} new tokens.")
    if p == CompareSettings().sampling and p != d:
        line += (f" These chat-style defaults differ from the Decode tab's starting values (temperature "
                 f"{d.temperature:g}, top-p {d.top_p:g}); change them under Settings (temperature 0 = greedy).")
    return line
