"""Prompts, the step-through state, and the DecodeService that caches logits and KV caches.

Gradio-free. A slider change re-filters cached logits (no model call); a step feeds only the new token on
top of the session's KV cache (`past_key_values`). Every cache is keyed on `store.revision`, so a model or
adapter switch can never serve stale numbers.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from playground.decode.checks import check_bool
from playground.decode.sampling import (
    Distribution,
    SamplingSettings,
    analyze,
    next_logits,
    rank_of,
    top_rows,
)
from playground.decode.tokens import token_label
from playground.fsutil import check_str
from playground.model.inspect import context_length
from playground.model.store import LoadedModel, ModelStore, SeenThroughViews

ALTERNATIVES = 5  # alternatives remembered per chosen token (shown on hover)


@dataclass(frozen=True)
class EncodedPrompt:
    """The user's prompt as fed to the model."""

    text: str                  # what the user typed
    chat: bool                 # wrapped in the chat template?
    fed_text: str              # the exact string the tokens come from (template applied)
    ids: tuple[int, ...]
    dropped: int = 0           # tokens cut from the left to fit the context

    @property
    def notice(self) -> str:
        if not self.dropped:
            return ""
        return (f"⚠️ The prompt was {self.dropped + len(self.ids)} tokens, longer than the model's context allows: "
                f"the first {self.dropped} tokens were dropped (kept the last {len(self.ids)}).")


def context_limit(lm: LoadedModel) -> int:
    """How many tokens the model can attend to."""
    from_config = context_length(lm.base_model)
    if from_config is not None:
        return from_config
    max_len = getattr(lm.tokenizer, "model_max_length", 0)
    return max_len if 0 < max_len < 1_000_000 else 2048


def prompt_budget(lm: LoadedModel) -> int:
    """Prompt tokens allowed: the context minus room for the tokens we generate after it."""
    limit = context_limit(lm)
    return max(1, limit - min(256, limit // 4))


def encode_prompt(tokenizer: Any, text: str, chat: bool, max_tokens: int) -> EncodedPrompt:
    """Tokenize a prompt as the model will see it; too long -> keep the last max_tokens tokens."""
    text, chat = check_str("prompt", text), check_bool("chat", chat)  # the text "false" must not turn it on
    if not text.strip():
        raise ValueError("The prompt is empty: type some text first.")
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("This model has no chat template: untick “chat” to use the prompt as plain text.")
        fed = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                            tokenize=False)
        ids = tokenizer(fed, add_special_tokens=False)["input_ids"]  # the template already holds BOS etc.
    else:
        ids = tokenizer(text)["input_ids"]
        fed = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    dropped = max(0, len(ids) - max_tokens)
    if dropped:
        ids = ids[dropped:]
        fed = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return EncodedPrompt(text=text, chat=chat, fed_text=fed, ids=tuple(int(i) for i in ids), dropped=dropped)


@dataclass(frozen=True)
class ChosenToken:
    """A token appended in the step-through, with what the distribution looked like at that step."""

    token_id: int
    label: str
    prob: float            # final probability (greedy settings: the model's probability after penalty)
    raw_prob: float        # the model's own probability
    rank: int
    how: str               # "picked" | "sampled" | "greedy" | "generated" | "branched" | "beam" (decode/branch.py)
    alternatives: tuple[tuple[str, float], ...] = ()
    alternative_ids: tuple[int, ...] = ()  # the alternatives' token ids (branching); empty when not recorded

    def as_api(self) -> dict[str, Any]:
        ids = self.alternative_ids or (None,) * len(self.alternatives)
        return {"token": self.label, "id": self.token_id, "prob": self.prob, "raw_prob": self.raw_prob,
                "rank": self.rank, "how": self.how,
                "alternatives": [{"token": t, "prob": p, "id": i} for (t, p), i in zip(self.alternatives, ids)]}


def chosen_from_distribution(dist: Distribution, tokenizer: Any, token_id: int, how: str) -> ChosenToken:
    """Record token_id as chosen from dist (its probability, rank and the top alternatives)."""
    probs = dist.scaled_probs if dist.settings.greedy else dist.final_probs
    rows = top_rows(dist, tokenizer, ALTERNATIVES)
    alts = tuple((r.token, r.scaled_prob if dist.settings.greedy else r.final_prob) for r in rows)
    return ChosenToken(token_id=int(token_id), label=token_label(tokenizer, token_id), prob=float(probs[token_id]),
                       raw_prob=float(dist.raw_probs[token_id]), rank=rank_of(dist, token_id), how=how,
                       alternatives=alts, alternative_ids=tuple(r.token_id for r in rows))


@dataclass(frozen=True)
class StepState:
    """What one browser session has built: the prompt and the tokens chosen so far (small, copyable).
    The KV cache lives in the DecodeService under session_id."""

    prompt: EncodedPrompt
    chosen: tuple[ChosenToken, ...] = ()
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def ids(self) -> tuple[int, ...]:
        return self.prompt.ids + tuple(c.token_id for c in self.chosen)

    def append(self, token: ChosenToken) -> "StepState":
        return replace(self, chosen=self.chosen + (token,))

    def extend(self, tokens: list[ChosenToken]) -> "StepState":
        return replace(self, chosen=self.chosen + tuple(tokens))

    def undo(self) -> "StepState":
        return replace(self, chosen=self.chosen[:-1])

    def reset(self) -> "StepState":
        return replace(self, chosen=())


@dataclass
class _KVEntry:
    revision: int
    ids: tuple[int, ...]
    past: Any


class DecodeService(SeenThroughViews):
    """Caches next-token logits by (store.revision, token ids) and one KV cache per step session."""

    def __init__(self, store: ModelStore, max_logits: int = 64, max_sessions: int = 8) -> None:
        self.store = store
        self.max_logits, self.max_sessions = max_logits, max_sessions
        self._logits: OrderedDict[tuple[int, tuple[int, ...]], torch.Tensor] = OrderedDict()
        self._kv: OrderedDict[str, _KVEntry] = OrderedDict()
        self._lock = threading.Lock()  # guards the dicts; model calls take store.use()
        self._tokenizer_lock = threading.Lock()  # encode() runs outside the model lock
        self.model_calls = 0           # forward passes run (tests and the bench read it)
        self.tokens_fed = 0            # tokens fed through the model in those passes
        self._base: tuple[tuple[int, tuple[int, ...]], torch.Tensor] | None = None  # last base-overlay pass

    def base_probs(self, ids: tuple[int, ...]) -> torch.Tensor | None:
        """Next-token probabilities of the base (adapter disabled) for the overlay, or None with no adapter
        active. One pass per text, cached, so slider moves stay cheap."""
        from playground.adapters.live import next_token_probs_base_vs_tuned

        if self.store.current.active_adapter is None:
            return None
        key = (self.store.revision, ids)
        with self._lock:
            if self._base is not None and self._base[0] == key:
                return self._base[1]
        probs = next_token_probs_base_vs_tuned(self.store, torch.tensor(ids)).base
        with self._lock:
            self._base = (key, probs)
        return probs

    def encode(self, text: str, chat: bool) -> EncodedPrompt:
        """Tokenize without the model lock (a room of students should not queue behind a generation just to
        tokenize); the tokenizer has a lock of its own, as the fast tokenizer is not safe to share."""
        lm = self.store.current
        with self._tokenizer_lock:
            return encode_prompt(lm.tokenizer, text, chat, prompt_budget(lm))

    def logits(self, ids: tuple[int, ...], session_id: str | None = None) -> torch.Tensor:
        """Raw next-token logits after ids: from the cache, else by extending the session's KV cache,
        else by a full forward pass."""
        ids = tuple(int(i) for i in ids)
        if not ids:
            raise ValueError("Nothing to predict from: the prompt has no tokens.")
        cached = self._cached(ids)
        if cached is not None:
            return cached
        with self.store.reading() as lm:
            revision = self.store.revision
            if len(ids) > context_limit(lm):
                raise ValueError(f"The text is {len(ids)} tokens, more than the model's context of "
                                 f"{context_limit(lm)}: undo some tokens or shorten the prompt.")
            with self._lock:
                entry = self._kv.pop(session_id, None) if session_id else None
            logits, past = self._forward(lm, ids, entry, revision)
            with self._lock:
                self._logits[(revision, ids)] = logits
                while len(self._logits) > self.max_logits:
                    self._logits.popitem(last=False)
                if session_id:
                    self._kv[session_id] = _KVEntry(revision, ids, past)
                    while len(self._kv) > self.max_sessions:
                        self._kv.popitem(last=False)
        return logits

    def _cached(self, ids: tuple[int, ...]) -> torch.Tensor | None:
        with self._lock:
            key = (self.store.revision, ids)
            if key in self._logits:
                self._logits.move_to_end(key)
                return self._logits[key]
        return None

    def _forward(self, lm: LoadedModel, ids: tuple[int, ...], entry: _KVEntry | None,
                 revision: int) -> tuple[torch.Tensor, Any]:
        """Feed only what the KV cache lacks: the common prefix is reused (cropped after an undo)."""
        start, past = 0, None
        if entry is not None and entry.revision == revision and entry.past is not None:
            common = 0
            for a, b in zip(entry.ids, ids):
                if a != b:
                    break
                common += 1
            common = min(common, len(ids) - 1)  # feed at least one token to get logits
            if common > 0:
                try:
                    if len(entry.ids) > common:
                        entry.past.crop(-(len(entry.ids) - common))
                    start, past = common, entry.past
                except Exception:  # some caches (sliding window, linear attention) cannot roll back
                    start, past = 0, None
        self.model_calls += 1
        self.tokens_fed += len(ids) - start
        return next_logits(lm.model, ids[start:], lm.device, past)

    def distribution(self, ids: tuple[int, ...], settings: SamplingSettings,
                     session_id: str | None = None) -> Distribution:
        return analyze(self.logits(ids, session_id), ids, settings)

    def tokenizer(self) -> Any:
        return self.store.current.tokenizer

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._kv.pop(session_id, None)
