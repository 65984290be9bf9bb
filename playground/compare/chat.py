"""Compare tab logic: one message to the base (adapter disabled) and the tuned model, side by side.

Both columns use the same system prompt, decoding settings and seed, so any difference comes from the
adapter. One worker thread holds the ModelStore lock for a whole turn (base, tuned, optional third adapter,
then the "what changed" pass), so a swap or another session's compare waits instead of interleaving; the
consumer (the Gradio handler) only reads a queue, so the lock is never held across yields.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import StoppingCriteriaList, TextStreamer

from playground.adapters.library import AdapterError
from playground.adapters.live import AdapterManager
from playground.adapters.session import AdapterChoice
from playground.compare.diff import WhatChanged, what_changed
from playground.decode.cancel import Cancel, GiveWay, Turns
from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings, generate_kwargs
from playground.decode.session import context_limit
from playground.decode.tokens import special_ids
from playground.fsutil import check_str, shown
from playground.model.store import LoadedModel
from playground.model.turns import Urgency

MAX_NEW_TOKENS = 1024
COLUMNS = ("base", "tuned", "other")
NO_ADAPTER_HINT = ("No adapter is active, so only the base model answers. Activate an adapter in the "
                   "Adapters tab to compare base and tuned side by side.")
Message = dict[str, Any]


@dataclass(frozen=True)
class CompareSettings:
    """Everything both columns share: decoding knobs, answer length, seed and system prompt."""

    sampling: SamplingSettings = field(default_factory=lambda: SamplingSettings(temperature=0.7, top_p=0.95))
    max_new_tokens: int = 128
    seed: int = 0
    system_prompt: str = ""

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int("seed", self.seed, 0, 2**32 - 1)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, seed: Any = None) -> "CompareSettings":
        """From loose UI/API values; unknown keys are refused so a typo is not silently ignored."""
        if values is not None and not isinstance(values, dict):  # e.g. the text "{}" or a list from the API
            raise ValueError(f"settings must be an object of setting names to values, e.g. {{\"temperature\": 0.7}} "
                             f"(got {shown(values)}).")
        values = dict(values or {})
        allowed = {"temperature", "top_k", "top_p", "min_p", "repetition_penalty", "max_new_tokens", "seed",
                   "system_prompt"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"Unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}.")
        d = cls()
        sampling = SamplingSettings.from_values(
            values.get("temperature", d.sampling.temperature), values.get("top_k", d.sampling.top_k),
            values.get("top_p", d.sampling.top_p), values.get("min_p", d.sampling.min_p),
            values.get("repetition_penalty", d.sampling.repetition_penalty))
        seed = values.get("seed", d.seed) if seed is None else seed
        return cls(sampling=sampling, max_new_tokens=check_int("max_new_tokens", values.get(
            "max_new_tokens", d.max_new_tokens), 1, MAX_NEW_TOKENS), seed=check_int("seed", seed, 0, 2**32 - 1),
            system_prompt=check_str("system_prompt", values.get("system_prompt")))


@dataclass(frozen=True)
class CompareRequest:
    """One turn: the message, the shared settings, each column's earlier turns, an optional third adapter."""

    message: str
    settings: CompareSettings = field(default_factory=CompareSettings)
    histories: dict[str, tuple[Message, ...]] = field(default_factory=dict)
    other_adapter: str | None = None
    # The browser session's adapter choice (adapters.session): the tuned column runs it; default: the server's.
    adapter: AdapterChoice = field(default_factory=AdapterChoice)

    def __post_init__(self) -> None:
        if not check_str("message", self.message).strip():
            raise ValueError("The message is empty: type something to send to both models.")


@dataclass
class ColumnResult:
    column: str
    adapter: str | None  # which adapter produced this answer (None = the base model)
    text: str
    token_ids: list[int]
    prompt_ids: list[int]
    error: str | None = None


@dataclass
class CompareResult:
    model: str
    adapter: str | None
    columns: dict[str, ColumnResult]
    changed: WhatChanged | None
    hint: str | None = None

    def as_api(self) -> dict[str, Any]:
        """The /compare answer: both texts and the per-token log-probability differences."""
        col = self.columns
        return {"model": self.model, "adapter": self.adapter, "hint": self.hint,
                "base_text": col["base"].text, "tuned_text": col["tuned"].text if "tuned" in col else None,
                "other_adapter": col["other"].adapter if "other" in col else None,
                "other_text": col["other"].text if "other" in col else None,
                "divergence_index": self.changed.divergence_index if self.changed else None,
                "tokens": self.changed.as_api() if self.changed else []}


@dataclass
class CompareUpdate:
    """A streaming snapshot: the text so far per column, and the full result once done."""

    texts: dict[str, str]
    adapters: dict[str, str | None]
    status: str = ""
    result: CompareResult | None = None


def build_prompt_ids(tokenizer: Any, system_prompt: str, history: tuple[Message, ...] | list[Message],
                     message: str) -> list[int]:
    """Token ids of the conversation so far plus the new user message, ready for the assistant's answer."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    messages += [{"role": m["role"], "content": m["content"]} for m in history] + [
        {"role": "user", "content": message}]
    if getattr(tokenizer, "chat_template", None):
        return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"])  # the template holds BOS etc.
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant:"
    return list(tokenizer(text)["input_ids"])


class _CallbackStreamer(TextStreamer):
    """transformers' TextStreamer, handing each finished piece of text to a callback instead of stdout."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.on_text(text)


def _trim_special(tokenizer: Any, ids: list[int]) -> list[int]:
    special = special_ids(tokenizer)
    while ids and ids[-1] in special:
        ids = ids[:-1]
    return ids


def no_room(prompt_tokens: int, limit: int, earlier_turns: bool) -> str:
    """Why a turn cannot start: a long conversation (the page's Clear helps) or one message too long by itself
    (the API has neither history nor Clear, so say how long it is)."""
    if earlier_turns:
        return "The conversation no longer fits in the model's context: press Clear to start over."
    return (f"The message is too long for the model's context: {prompt_tokens:,} tokens with the system prompt and "
            f"chat template, and the context holds {limit:,} tokens, the answer included. Shorten the message.")


def generate_answer(lm: LoadedModel, prompt_ids: list[int], settings: CompareSettings,
                    on_text: Callable[[str], None], cancel: threading.Event,
                    turns: Turns, want_logits: bool = False,
                    earlier_turns: bool = False) -> tuple[list[int], torch.Tensor | None]:
    """Seeded generate() on whatever adapter state the caller set up; returns (answer ids, raw logits).
    `turns` (the model store): between tokens, give way to more urgent calls (decode/cancel.GiveWay).
    `earlier_turns`: the prompt holds a history (only for the sentence when it does not fit)."""
    limit = context_limit(lm)
    room = limit - len(prompt_ids)
    if room < 1:
        raise ValueError(no_room(len(prompt_ids), limit, earlier_turns))
    ids = torch.tensor([prompt_ids], dtype=torch.long, device=lm.device)
    torch.manual_seed(settings.seed)
    with torch.inference_mode():
        out = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                streamer=_CallbackStreamer(lm.tokenizer, on_text),
                                stopping_criteria=StoppingCriteriaList([Cancel(cancel), GiveWay(turns)]),
                                max_new_tokens=min(settings.max_new_tokens, room),
                                pad_token_id=lm.tokenizer.pad_token_id, return_dict_in_generate=True,
                                output_logits=want_logits, **generate_kwargs(settings.sampling))
    answer = _trim_special(lm.tokenizer, out.sequences[0, len(prompt_ids):].tolist())
    logits = torch.cat(out.logits, 0)[:len(answer)] if want_logits and answer else None
    return answer, logits


def _run_turn(adapters: AdapterManager, req: CompareRequest, emit: Callable[..., None],
              cancel: threading.Event) -> CompareResult:
    """The whole turn under the model lock (runs in the worker thread)."""
    with adapters.store.reading(Urgency.GENERATE) as lm:
        active = req.adapter.resolve(lm.active_adapter)
        plan: list[tuple[str, str | None]] = [("base", None)] + ([("tuned", active)] if active else [])
        if req.other_adapter:
            plan.append(("other", req.other_adapter))
        columns: dict[str, ColumnResult] = {}
        logits = None
        for col, name in plan:
            emit("start", col, name)
            history = req.histories.get(col, ())
            prompt = build_prompt_ids(lm.tokenizer, req.settings.system_prompt, history, req.message)
            try:
                with adapters.using(name):  # None = base: PEFT's disable_adapter()
                    ids, col_logits = generate_answer(lm, prompt, req.settings, lambda t, c=col: emit("text", c, t),
                                                      cancel, adapters.store, want_logits=col == "tuned",
                                                      earlier_turns=bool(history))
            except AdapterError as err:  # deleted, renamed or not fitting this base: the other columns still answer
                emit("text", col, f"⚠️ {err}")
                columns[col] = ColumnResult(col, name, f"⚠️ {err}", [], prompt, error=str(err))
                continue
            if col == "tuned":
                logits = col_logits
            text = lm.tokenizer.decode(ids, skip_special_tokens=True)
            columns[col] = ColumnResult(col, name, text, ids, prompt)
        changed = None
        if "tuned" in columns and columns["tuned"].error is None:  # no "what changed" for a tuned column that failed
            t, b = columns["tuned"], columns["base"]
            with adapters.using(active):  # a forward pass may be needed: with the tuned column's adapter
                changed = what_changed(lm, t.prompt_ids, t.token_ids, logits, b.token_ids)
        return CompareResult(model=lm.name, adapter=active, columns=columns, changed=changed,
                             hint=None if active else NO_ADAPTER_HINT)


def stream_compare(adapters: AdapterManager, request: CompareRequest) -> Iterator[CompareUpdate]:
    """Yield growing snapshots of every column while the worker generates; the last one carries the result."""
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()

    def worker() -> None:
        try:
            events.put(("done", _run_turn(adapters, request, lambda *e: events.put(e), cancel)))
        except BaseException as err:  # re-raised in the consumer
            events.put(("error", err))

    # copy_context: the request's urgency (the presenter's) reaches the lock from this thread too
    threading.Thread(target=contextvars.copy_context().run, args=(worker,), name="compare-turn", daemon=True).start()
    texts: dict[str, str] = {}
    names: dict[str, str | None] = {}
    try:
        while True:
            kind, *payload = events.get()
            if kind == "start":
                texts[payload[0]], names[payload[0]] = "", payload[1]
                yield CompareUpdate(dict(texts), dict(names), status=f"Generating: {payload[0]}…")
            elif kind == "text":
                texts[payload[0]] = texts.get(payload[0], "") + payload[1]
                yield CompareUpdate(dict(texts), dict(names), status=f"Generating: {payload[0]}…")
            elif kind == "done":
                result: CompareResult = payload[0]
                final = {c: r.text for c, r in result.columns.items()}
                yield CompareUpdate(final, {c: r.adapter for c, r in result.columns.items()}, result=result)
                return
            else:
                raise payload[0]
    finally:
        cancel.set()  # the consumer went away: stop generating at the next token


def run_compare(adapters: AdapterManager, request: CompareRequest) -> CompareResult:
    """The whole turn, collected (the /compare endpoint and tests)."""
    for update in stream_compare(adapters, request):
        if update.result is not None:
            return update.result
    raise RuntimeError("The compare worker ended without a result.")


def next_histories(histories: dict[str, tuple[Message, ...]], message: str,
                   result: CompareResult) -> dict[str, tuple[Message, ...]]:
    """Each column's history plus this turn (columns that did not answer keep theirs); every answer records
    the adapter that produced it (None = the base)."""
    out = dict(histories)
    for col, res in result.columns.items():
        if res.error is None:
            out[col] = tuple(histories.get(col, ())) + ({"role": "user", "content": message},
                                                        {"role": "assistant", "content": res.text,
                                                         "adapter": res.adapter})
    return out

