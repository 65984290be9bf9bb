"""Whose turn on the model: the model lock goes to the waiter with the earliest deadline.

One model serves every browser on the server, one call at a time (`ModelStore.use()`). In a classroom, plain
first-come order puts the projector's next step behind every student's 16-token generation and Compare turn
(bench/classroom.py: a 7 s p95 for the presenter under 30 students). Instead each call, when it starts to
wait, gets a deadline: now + the allowance of its kind (`Urgency`). The lock is handed to the earliest
deadline (EDF scheduling):

* the presenter's calls (allowance -30 s) overtake everything that has waited less than 30 s: under load
  the students' generations wait seconds, and the projector must not queue behind them;
* a next-token step (0.5 s) overtakes generations and Compare turns (3 s) that arrived up to 2.5 s earlier;
* nobody starves: a call that has waited out its allowance goes before every call that starts waiting after
  that moment, whatever its kind.

A long holder gives way between tokens: a generation calls `yield_turn()` after each token (decode/cancel.py
`GiveWay`), and when a call with an earlier deadline waits, the holder steps out (leaving the adapter state
it set up, through the `keeping()` frames it registered), lets that call run, and steps back in ahead of
everything that came later (it keeps its own deadline). So the projector's step waits one token of a
student's generation, not the whole generation.

The kind comes from two places, the more urgent wins: the call site (`store.reading(Urgency.GENERATE)`) and the
context (`with urgency(Urgency.PRESENTER):` around a whole request, set by the UI for the presenter's
browser). It is a `ContextVar`, so a worker thread started with `contextvars.copy_context().run` (Decode's
stream, Compare's turn) keeps the request's urgency.

Gradio-free, no module-level mutable state (a ContextVar holds per-context values, not shared ones).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import itertools
import threading
import time
from collections.abc import Callable, Iterator


class Urgency(enum.Enum):
    """A call's allowance in seconds: how long it may wait before later calls of any kind queue behind it."""

    PRESENTER = -30.0  # the browser that owns an open room (the projector): ahead of all but 30-s-old calls
    STEP = 0.5        # one forward pass: a next-token distribution, a step, a slider's re-filter
    GENERATE = 3.0    # a generation, a Compare turn, a logit-lens pass: seconds of model time
    BATCH = 10.0      # an evaluation over a held-out set

    @property
    def allowance(self) -> float:
        return float(self.value)


_CONTEXT: contextvars.ContextVar[Urgency | None] = contextvars.ContextVar("playground_urgency", default=None)


def more_urgent(a: Urgency | None, b: Urgency | None) -> Urgency:
    """The smaller allowance of two (None = not set); STEP when neither is set."""
    picked = [u for u in (a, b) if u is not None]
    return min(picked, key=lambda u: u.allowance) if picked else Urgency.STEP


def context_urgency() -> Urgency | None:
    """The urgency the current context asks for (None: nobody set one)."""
    return _CONTEXT.get()


@contextlib.contextmanager
def urgency(level: Urgency) -> Iterator[None]:
    """Run the block at `level` or the context's own, whichever is more urgent."""
    token = _CONTEXT.set(more_urgent(_CONTEXT.get(), level))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class DeadlineLock:
    """A re-entrant lock handed to the waiter with the earliest deadline (ties: first come first served).

    `acquire(level)` waits with deadline now + the allowance of the more urgent of `level` and the context's
    urgency. Re-entry by the holding thread never waits. Used as `with lock:` (STEP unless the context says
    otherwise) or through `hold(level)`.

    Readers and the rest: a call that only reads the model (a forward pass, a generation, a session's own
    adapter switched on and back through `keeping` frames) says `reader=True`. Only readers may overtake a
    generation that gives way, and while one is paused only readers get the lock: a model load or a change
    of the server's adapter waits until the paused generation has finished, so it never runs on a model
    that changed under it. A holder that is not a reader never pauses (no load is left half-done)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None
        self._depth = 0
        self._queue: list[tuple[float, int, int, bool]] = []  # (deadline, arrival number, thread id, reader)
        self._deadline = 0.0  # the holder's
        self._holder_reads = False  # whether the holder took the lock as a reader (only a reader gives way)
        self._frames: list[tuple[Callable[[], None], Callable[[], None]]] = []  # the holder's (leave, back)
        self._paused = 0  # holders that gave way and wait to come back
        self._arrivals = itertools.count()
        self._clock = clock

    def acquire(self, level: Urgency | None = None, timeout: float | None = None, reader: bool = False) -> bool:
        """Wait for the lock (at most `timeout` seconds of real time when given); True once held."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            allowance = more_urgent(level, _CONTEXT.get()).allowance
            if not self._wait_turn(self._clock() + allowance, reader, timeout):
                return False
            self._depth = 1
            return True

    def _next(self, readers_only: bool = False) -> tuple[float, int, int, bool] | None:
        """The waiter served next: the earliest deadline among those who may go now. Caller holds _cond."""
        only_readers = readers_only or self._paused > 0
        return min((e for e in self._queue if e[3] or not only_readers), default=None)

    def _wait_turn(self, deadline: float, reader: bool, timeout: float | None = None) -> bool:
        """Queue with `deadline` and wait until the lock is free and this is the next waiter; caller holds _cond."""
        entry = (deadline, next(self._arrivals), threading.get_ident(), reader)
        self._queue.append(entry)
        give_up = None if timeout is None else time.monotonic() + timeout
        while self._owner is not None or self._next() is not entry:
            left = None if give_up is None else give_up - time.monotonic()
            if left is not None and left <= 0:
                self._queue.remove(entry)
                self._cond.notify_all()  # the next waiter may have changed
                return False
            self._cond.wait(left)
        self._queue.remove(entry)
        self._owner, self._deadline, self._frames, self._holder_reads = entry[2], deadline, [], entry[3]
        return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("release() of a DeadlineLock this thread does not hold")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()  # the next waiter takes it; the others wait again

    def _overtaken(self) -> bool:
        if not self._holder_reads:  # a load or swap in progress is never left half-done
            return False
        first = self._next(readers_only=True)
        return first is not None and first[0] < self._deadline

    def more_urgent_waiting(self) -> bool:
        """True when a reader with an earlier deadline than the holder's waits (cheap: read between tokens)."""
        with self._cond:
            return self._overtaken()

    def yield_turn(self) -> bool:
        """Called by the holder where it may pause (between two tokens): when a reader with an earlier
        deadline waits, leave the registered frames (innermost first), let the readers with earlier deadlines
        run, take the lock back with the same deadline and depth, re-enter the frames (outermost first).
        Returns whether it paused."""
        me = threading.get_ident()
        with self._cond:
            if self._owner != me or not self._overtaken():
                return False
            depth, deadline, frames = self._depth, self._deadline, list(self._frames)
        for leave, _ in reversed(frames):
            leave()
        with self._cond:
            self._owner, self._depth = None, 0
            self._paused += 1
            self._cond.notify_all()
            self._wait_turn(deadline, reader=True)
            self._paused -= 1
            self._depth, self._frames = depth, frames
        for _, back in frames:
            back()
        return True

    @contextlib.contextmanager
    def keeping(self, leave: Callable[[], None], back: Callable[[], None]) -> Iterator[None]:
        """While the block runs, the holder's state can be left and re-entered by `yield_turn()`: `leave`
        puts shared state back as other calls expect it, `back` sets this call's up again."""
        if not self.held_by_me():
            raise RuntimeError("keeping() outside a hold of the lock")
        self._frames.append((leave, back))
        try:
            yield
        finally:
            self._frames.pop()

    @contextlib.contextmanager
    def hold(self, level: Urgency | None = None, reader: bool = False) -> Iterator[None]:
        self.acquire(level, reader=reader)
        try:
            yield
        finally:
            self.release()

    def __enter__(self) -> "DeadlineLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def waiting(self) -> int:
        """How many calls wait for the lock now."""
        with self._cond:
            return len(self._queue)

    def held_by_me(self) -> bool:
        with self._cond:
            return self._owner == threading.get_ident()
