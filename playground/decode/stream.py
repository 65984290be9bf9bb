"""'Generate N tokens': generate() in a thread, streamed token by token, with the probability every token had
when it was chosen.

Gradio-free. The settings' processors (transformers' own classes, see sampling.build_processors) are passed
to generate() with a last recorder processor, so the recorder sees exactly the scores generate() samples
from; generate's own warpers are switched off so nothing is applied twice. tests/test_decoding_stream.py
checks the tokens equal a plain `generate(**generate_kwargs(settings))` with the same seed.

Kept cheap so streaming costs < 5 % against a bare generate() (bench/decode.py `stream_vs_bare`): the streamer
decodes no text (the consumer renders tokens, not strings), and the consumer is handed a new snapshot only as
often as it can render one without taking more than ~5 % of the time (on a 2-core CPU every millisecond the
consumer's rendering takes comes out of the model's threads).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from playground.decode.cancel import Cancel, GiveWay
from playground.decode.checks import check_int
from playground.decode.sampling import NEUTRAL_GENERATE_KWARGS, SamplingSettings, build_processors
from playground.decode.session import ALTERNATIVES, ChosenToken, context_limit
from playground.decode.tokens import token_label
from playground.model.store import ModelStore
from playground.model.turns import Urgency

MAX_NEW_TOKENS = 512
CONSUMER_SHARE = 0.05  # at most this share of the time goes to the consumer rendering snapshots
MAX_SNAPSHOT_GAP_S = 0.5  # …but a snapshot at least this often while tokens arrive


class _StepRecorder(LogitsProcessor):
    """Last processor in the list: keeps the scores of the step about to be sampled (a copy; the softmax is the
    consumer's, see _TokenStreamer)."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None  # what generate() samples from at this step, as scores
        self.raw: torch.Tensor | None = None     # the model's own scores (set by _RawRecorder)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        self.scores = scores[0].clone()
        return scores


class _RawRecorder(LogitsProcessor):
    """First processor in the list: keeps the model's own scores (before penalty/temperature)."""

    def __init__(self, recorder: _StepRecorder) -> None:
        self.recorder = recorder

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        self.recorder.raw = scores[0].clone()
        return scores


class _TokenStreamer(BaseStreamer):
    """Pairs each new token with the recorder's scores and wakes the consumer (no text decoding).

    generate()'s thread only queues (token, scores); the consumer turns them into `ChosenToken`s (softmax, top
    alternatives, rank, labels) when it takes a snapshot. On a 2-CPU machine the model has one torch thread, so
    that work runs on the other CPU instead of between two decode steps."""

    def __init__(self, tokenizer: Any, recorder: _StepRecorder) -> None:
        self.tokenizer, self.recorder = tokenizer, recorder
        self._tokens: list[ChosenToken] = []  # the consumer's
        self._pending: queue.SimpleQueue[tuple[int, torch.Tensor, torch.Tensor | None]] = queue.SimpleQueue()
        self.produced = 0  # tokens generate() has handed over
        self.wake: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: new tokens; False: the end
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() hands over the prompt first
            self._prompt_seen = True
            return
        for tid in value.reshape(-1).tolist():
            self._pending.put((int(tid), self.recorder.scores, self.recorder.raw))
            self.produced += 1
        self.wake.put(True)

    def end(self) -> None:
        self.wake.put(False)

    def __iter__(self) -> Iterator[bool]:
        while self.wake.get():
            yield True

    def recorded(self) -> list[ChosenToken]:
        """Every token handed over so far, recorded now if not yet (call from the consumer's thread only)."""
        while not self._pending.empty():
            self._tokens.append(self._record(*self._pending.get_nowait()))
        return self._tokens

    def _record(self, tid: int, scores: torch.Tensor, raw_scores: torch.Tensor | None) -> ChosenToken:
        probs = scores.float().softmax(-1)
        top = torch.topk(probs, min(ALTERNATIVES, probs.numel()))
        ids = top.indices.tolist()
        alts = tuple((token_label(self.tokenizer, i), p) for p, i in zip(top.values.tolist(), ids))
        raw = float(raw_scores.float().softmax(-1)[tid]) if raw_scores is not None else float("nan")
        return ChosenToken(token_id=tid, label=token_label(self.tokenizer, tid), prob=float(probs[tid]),
                           raw_prob=raw, rank=int((probs > probs[tid]).sum()) + 1, how="generated",
                           alternatives=alts, alternative_ids=tuple(ids))


@dataclass(frozen=True)
class GenerateRequest:
    """One 'Generate N tokens' run."""

    ids: tuple[int, ...]
    settings: SamplingSettings
    max_new_tokens: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        check_int("seed", self.seed, 0, 2**32 - 1)
        if not self.ids:
            raise ValueError("Nothing to continue: the prompt has no tokens.")


def streaming_generate_kwargs(settings: SamplingSettings) -> dict[str, Any]:
    """generate() options when the processors are passed in: generate's own warpers off, nothing added."""
    return {**NEUTRAL_GENERATE_KWARGS, "do_sample": not settings.greedy, "repetition_penalty": 1.0,
            "temperature": 1.0 if not settings.greedy else None, "top_k": 0 if not settings.greedy else None,
            "top_p": 1.0 if not settings.greedy else None, "min_p": None}


def stream_generate(store: ModelStore, request: GenerateRequest) -> Iterator[list[ChosenToken]]:
    """Yield the tokens generated so far (growing list) as generate() produces them; stops at EOS."""
    recorder = _StepRecorder()
    cancel = Cancel()
    errors: list[BaseException] = []
    with store.reading() as lm:
        tokenizer, device = lm.tokenizer, lm.device
        room = context_limit(lm) - len(request.ids)
    if room < 1:
        raise ValueError("The context is full: undo some tokens or shorten the prompt.")
    streamer = _TokenStreamer(tokenizer, recorder)
    processors = LogitsProcessorList([_RawRecorder(recorder), *build_processors(request.settings), recorder])

    def run() -> None:
        try:
            with store.reading(Urgency.GENERATE) as lm, torch.inference_mode():  # held by this thread only
                input_ids = torch.tensor([list(request.ids)], dtype=torch.long, device=device)
                torch.manual_seed(request.seed)
                lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                  logits_processor=processors,
                                  stopping_criteria=StoppingCriteriaList([cancel, GiveWay(store)]),
                                  streamer=streamer, max_new_tokens=min(request.max_new_tokens, room),
                                  pad_token_id=lm.tokenizer.pad_token_id,
                                  **streaming_generate_kwargs(request.settings))
        except BaseException as err:  # surfaced to the consumer below
            errors.append(err)
            streamer.end()

    # copy_context: the request's urgency (the presenter's) reaches the lock from this thread too
    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="decode-generate",
                              daemon=True)
    thread.start()
    seen, due = 0, 0.0
    try:
        for _ in streamer:
            if streamer.produced > seen and time.perf_counter() >= due:
                handed = time.perf_counter()
                snapshot = list(streamer.recorded())  # recorded here, in the consumer's thread
                seen = len(snapshot)
                yield snapshot
                back = time.perf_counter()  # the consumer rendered this snapshot meanwhile
                due = back + min(MAX_SNAPSHOT_GAP_S, (back - handed) * (1 / CONSUMER_SHARE - 1))
        thread.join()
    finally:
        cancel.event.set()  # if the consumer stopped early, end generate() at the next token
    if errors:
        raise errors[0]
    if streamer.produced > seen or seen == 0:
        yield list(streamer.recorded())


def generate_all(store: ModelStore, request: GenerateRequest) -> list[ChosenToken]:
    """The whole stream, collected (used by the /generate API endpoint)."""
    tokens: list[ChosenToken] = []
    for tokens in stream_generate(store, request):
        pass
    return tokens
