"""Every state is a link: the Decode and Compare tabs' state as a URL query string, and back (Gradio-free).

`PageState` holds what a link can say; every field is named like its query key and None means "not in the
link". `PageState.to_query()` writes `tab=decode&prompt=…&temperature=0.7&…&steps=g450,s1123,p17`;
`from_query(params, vocab_size, library_names)` reads one back and checks every value the way the tab's own
controls do, returning the state plus one sentence per thing it ignored (an unknown key, a value out of
range, an adapter that is not in the library, tampered steps). Nothing here raises for a bad link.

The number ranges are the controls' own (ui/decode_tab.py, ui/decode_samplers.py, ui/compare_tab.py; a test
builds the app and compares), so a link can only say what the page can show.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import quote, urlencode

from playground.compare.chat import MAX_NEW_TOKENS, CompareSettings
from playground.decode.beam import MAX_BEAMS, MAX_STEPS, BeamSettings
from playground.decode.checks import check_float, check_int
from playground.decode.sampling import SamplingSettings
from playground.decode.views import KNOB_NAMES
from playground.fsutil import cut

TABS = ("model", "decode", "inside", "train", "adapters", "room", "compare")
VIEWS = ("next", "beam", "explore")  # the Decode sub-tabs decode-next / decode-beam / decode-explore
# steps: one letter for how each token was chosen (g, s, p: the step buttons; the others keep what the
# tooltip says for tokens from "Generate N", a branch or a beam-tree node).
HOW = {"g": "greedy", "s": "sampled", "p": "picked", "n": "generated", "b": "branched", "m": "beam"}
HOW_CODE = {how: code for code, how in HOW.items()}
BASE = "base"  # adapter=base: this browser runs the base model
SILENT = frozenset({"lesson", "step", "presenter", "room", "__theme"})  # other features' keys: not ours, not wrong
MAX_TEXT = {"prompt": 4000, "message": 4000, "c_system": 2000, "sequence_bias": 500, "banned_words": 500,
            "adapter": 200}
MAX_LINK_STEPS = 512
SEED_MAX = 2**32 - 1
TEXT_KNOBS = ("sequence_bias", "banned_words")

# key -> (int or float, low, high): the controls' ranges.
NUMBERS: dict[str, tuple[type, float, float]] = {
    "temperature": (float, 0, 2), "top_k": (int, 0, 200), "top_p": (float, 0.01, 1), "min_p": (float, 0, 1),
    "repetition_penalty": (float, 0.5, 2), "typical_p": (float, 0.01, 1), "epsilon_cutoff": (float, 0, 0.05),
    "eta_cutoff": (float, 0, 0.05), "top_h": (float, 0, 1), "no_repeat_ngram_size": (int, 0, 10),
    "seed": (int, 0, SEED_MAX), "top_n": (int, 5, 50), "beams": (int, 1, MAX_BEAMS),
    "beam_steps": (int, 1, MAX_STEPS), "length_penalty": (float, -2, 2),
    "c_temperature": (float, 0, 2), "c_top_k": (int, 0, 200), "c_top_p": (float, 0.05, 1), "c_min_p": (float, 0, 1),
    "c_repetition_penalty": (float, 0.5, 2), "c_max_new_tokens": (int, 1, MAX_NEW_TOKENS), "c_seed": (int, 0, SEED_MAX),
}
DECODE_KEYS = ("prompt", "chat", *KNOB_NAMES, "seed", "top_n", "steps", "view", "beams", "beam_steps",
               "length_penalty")
COMPARE_KEYS = ("message", "c_system", "c_temperature", "c_top_k", "c_top_p", "c_min_p", "c_repetition_penalty",
                "c_max_new_tokens", "c_seed")
_STEP = re.compile(r"([a-z])(\d{1,9})")


def _decode_defaults() -> dict[str, Any]:
    s, b = SamplingSettings(), BeamSettings()
    knobs = {k: getattr(s, k) for k in KNOB_NAMES if k not in TEXT_KNOBS}
    return {"chat": False, **knobs, "sequence_bias": "", "banned_words": "", "seed": 0, "top_n": 20,
            "view": "next", "beams": b.num_beams, "beam_steps": b.steps, "length_penalty": b.length_penalty}


def _compare_defaults() -> dict[str, Any]:
    c = CompareSettings()
    p = c.sampling
    return {"c_system": c.system_prompt, "c_temperature": p.temperature, "c_top_k": p.top_k, "c_top_p": p.top_p,
            "c_min_p": p.min_p, "c_repetition_penalty": p.repetition_penalty, "c_max_new_tokens": c.max_new_tokens,
            "c_seed": c.seed}


# The tabs' starting values (a test checks the built components against them).
DECODE_DEFAULTS = _decode_defaults()
COMPARE_DEFAULTS = _compare_defaults()


@dataclass(frozen=True)
class PageState:
    """What a link says (None: the link does not say). Field names are the query keys; `steps` holds
    (how, token id) pairs with `how` as in decode.session.ChosenToken (greedy, sampled, picked, …)."""

    tab: str | None = None
    prompt: str | None = None
    chat: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    typical_p: float | None = None
    epsilon_cutoff: float | None = None
    eta_cutoff: float | None = None
    top_h: float | None = None
    no_repeat_ngram_size: int | None = None
    sequence_bias: str | None = None
    banned_words: str | None = None
    seed: int | None = None
    top_n: int | None = None
    steps: tuple[tuple[str, int], ...] | None = None
    view: str | None = None
    beams: int | None = None
    beam_steps: int | None = None
    length_penalty: float | None = None
    adapter: str | None = None  # a library adapter's name, or "base"
    message: str | None = None
    c_system: str | None = None
    c_temperature: float | None = None
    c_top_k: int | None = None
    c_top_p: float | None = None
    c_min_p: float | None = None
    c_repetition_penalty: float | None = None
    c_max_new_tokens: int | None = None
    c_seed: int | None = None

    def to_query(self) -> str:
        """The query string (no leading '?'), keys in field order, only those the state says."""
        pairs = [(f.name, _text_of(f.name, getattr(self, f.name))) for f in fields(self)]
        return urlencode([(k, v) for k, v in pairs if v is not None], quote_via=quote, safe=",")

    @property
    def touches_decode(self) -> bool:
        return any(getattr(self, k) is not None for k in DECODE_KEYS)

    @property
    def touches_compare(self) -> bool:
        return any(getattr(self, k) is not None for k in COMPARE_KEYS)

    @property
    def shown_tab(self) -> str | None:
        """The tab to open: the link's, else the one whose keys it holds (Decode first)."""
        if self.tab:
            return self.tab
        return "decode" if self.touches_decode else "compare" if self.touches_compare else None

    def decode_values(self) -> dict[str, Any]:
        """Every Decode control (not the prompt): the link's value, else the tab's starting value. A link
        describes a whole state, so what it leaves out is the default, not whatever the page showed before."""
        return {k: v if (v := getattr(self, k)) is not None else d for k, d in DECODE_DEFAULTS.items()}

    def knob_values(self) -> tuple[Any, ...]:
        """The knobs in KNOB_NAMES order (decode.views.settings_from_values' order)."""
        values = self.decode_values()
        return tuple(values[k] for k in KNOB_NAMES)

    def compare_values(self) -> dict[str, Any]:
        return {k: v if (v := getattr(self, k)) is not None else d for k, d in COMPARE_DEFAULTS.items()}

    def without_steps(self) -> "PageState":
        return replace(self, steps=None)


def _text_of(key: str, value: Any) -> str | None:
    """One field as it appears in the query."""
    if value is None:
        return None
    if key == "steps":
        return ",".join(f"{HOW_CODE.get(how, 'p')}{int(tid)}" for how, tid in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".10g")
    return str(value)


def steps_of(chosen: Any) -> tuple[tuple[str, int], ...]:
    """(how, token id) of a StepState's chosen tokens (decode.session.ChosenToken)."""
    return tuple((c.how if c.how in HOW_CODE else "picked", int(c.token_id)) for c in chosen)


def _shown(value: Any, limit: int = 40) -> str:
    """A user-supplied key or value quoted for a note (cut short, HTML-escaped)."""
    return html.escape(repr(cut(str(value), limit)), quote=False)


def _loose(value: Any) -> str:
    """A query value as text: links give strings; a lesson file may give numbers or booleans."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):  # a repeated key: the last one wins, as in a browser's URLSearchParams
        return _loose(value[-1]) if value else ""
    return str(value)


def _number(key: str, text: str) -> int | float:
    kind, low, high = NUMBERS[key]
    if kind is int:
        return check_int(key, text, int(low), int(high))
    return check_float(key, text, low, high)


def _steps(text: str, vocab_size: int | None) -> tuple[tuple[str, int], ...]:
    """`g450,s1123,p17` -> (("greedy", 450), …); a ValueError sentence for anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) > MAX_LINK_STEPS:
        raise ValueError(f"there are {len(parts)} of them, more than the {MAX_LINK_STEPS} a link may hold")
    out = []
    for part in parts:
        m = _STEP.fullmatch(part)
        if not m or m.group(1) not in HOW:
            raise ValueError(f"{_shown(part)} is not a letter ({', '.join(HOW)}) followed by a token id, "
                             "as in g450")
        tid = int(m.group(2))
        if vocab_size is not None and tid >= vocab_size:
            raise ValueError(f"token id {tid} is outside this model's vocabulary of {vocab_size:,} tokens")
        out.append((HOW[m.group(1)], tid))
    return tuple(out)


def _field(key: str, text: str, vocab_size: int | None, library_names: set[str]) -> tuple[Any, str | None]:
    """(the value, None) or (None, a sentence saying why the key was ignored)."""
    if key in MAX_TEXT and len(text) > MAX_TEXT[key]:
        return None, f"The link's {key} was ignored: it is longer than {MAX_TEXT[key]:,} characters."
    try:
        if key in NUMBERS:
            return _number(key, text), None
        if key == "tab":
            if text not in TABS:
                raise ValueError(f"tab must be one of {', '.join(TABS)}; got {_shown(text)}.")
            return text, None
        if key == "view":
            if text not in VIEWS:
                raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {_shown(text)}.")
            return text, None
        if key == "chat":
            if text not in ("0", "1"):
                raise ValueError(f"chat must be 0 or 1; got {_shown(text)}.")
            return text == "1", None
        if key == "steps":
            return _steps(text, vocab_size), None
    except ValueError as err:
        what = "The link's steps were ignored: " if key == "steps" else f"The link's {key} was ignored: "
        return None, what + str(err).rstrip(".") + "."
    if key == "adapter":
        if text == BASE or text in library_names:
            return text, None
        return BASE, (f"The adapter {_shown(text, 80)} in the link is not in this server's library; "
                      "showing the base.")
    return text, None  # prompt, message, c_system, sequence_bias, banned_words


def from_query(params: Mapping[str, Any], vocab_size: int | None = None,
               library_names: Any = ()) -> tuple[PageState, list[str]]:
    """A link's query (key -> value) as a PageState, plus one sentence per thing ignored. `vocab_size`: the
    model's (token ids at or above it are refused; None: not checked); `library_names`: the adapters there are."""
    names = set(library_names or ())
    known = {f.name for f in fields(PageState)}
    values: dict[str, Any] = {}
    notes: list[str] = []
    unknown = []
    for key, raw in (params or {}).items():
        key = str(key)
        if key in SILENT:
            continue
        if key not in known:
            unknown.append(key)
            continue
        value, note = _field(key, _loose(raw), vocab_size, names)
        if note:
            notes.append(note)
        if value is not None:
            values[key] = value
    if values.get("steps") and "prompt" not in values:
        del values["steps"]
        notes.append("The link's steps were ignored: they continue a prompt, and the link has none.")
    if unknown:
        more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
        listed = ", ".join(_shown(k) for k in unknown[:8]) + more
        notes.append(f"Unknown link key{'s' if len(unknown) > 1 else ''} ignored: {listed}.")
    return PageState(**values), notes
