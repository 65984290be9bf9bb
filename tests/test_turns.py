"""The model lock hands itself out by deadline (model/turns.py): urgency order, first come first served within a
level, re-entrancy, urgency contexts, and a holder that gives way between tokens. The presenter-first wiring
on top of it is in test_presenter_first.py."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time

import pytest

from playground.model.turns import DeadlineLock, Urgency, context_urgency, more_urgent, urgency


def wait_until(check, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.005)


def queue_waiters(lock: DeadlineLock, waiters: list[tuple[str, Urgency | None, Urgency | None]]) -> list[str]:
    """Hold the lock, queue each (name, call level, context level) in order, release; the order served."""
    served: list[str] = []
    lock.acquire()
    threads = []
    for i, (name, level, ctx) in enumerate(waiters):
        def run(name=name, level=level, ctx=ctx) -> None:
            def body() -> None:
                with lock.hold(level):
                    served.append(name)
            if ctx is None:
                body()
            else:
                with urgency(ctx):
                    body()
        t = threading.Thread(target=run)
        t.start()
        threads.append(t)
        wait_until(lambda n=i + 1: lock.waiting() == n)
    lock.release()
    for t in threads:
        t.join(5)
    return served


def test_more_urgent_calls_overtake_in_deadline_order():
    served = queue_waiters(DeadlineLock(), [("generate", Urgency.GENERATE, None), ("evaluate", Urgency.BATCH, None),
                                            ("step", None, None), ("presenter", Urgency.GENERATE, Urgency.PRESENTER)])
    assert served == ["presenter", "step", "generate", "evaluate"]


def test_same_kind_is_first_come_first_served():
    served = queue_waiters(DeadlineLock(), [(f"g{i}", Urgency.GENERATE, None) for i in range(5)])
    assert served == ["g0", "g1", "g2", "g3", "g4"]


def test_a_call_that_waited_out_its_allowance_goes_before_later_short_ones():
    """No starvation: a generation queued at t=0 (deadline 3.0) goes before a step queued at t=2.6 (3.1)."""
    now = [0.0]
    lock = DeadlineLock(clock=lambda: now[0])
    served: list[str] = []
    lock.acquire()

    def waiter(name: str, level: Urgency) -> threading.Thread:
        def run() -> None:
            with lock.hold(level):
                served.append(name)
        t = threading.Thread(target=run)
        t.start()
        return t

    threads = [waiter("generate", Urgency.GENERATE)]
    wait_until(lambda: lock.waiting() == 1)
    now[0] = 2.6
    threads.append(waiter("late step", Urgency.STEP))
    wait_until(lambda: lock.waiting() == 2)
    now[0] = 2.0  # (the clock is only read on arrival)
    threads.append(waiter("early step", Urgency.STEP))  # deadline 2.5: before the generation
    wait_until(lambda: lock.waiting() == 3)
    lock.release()
    for t in threads:
        t.join(5)
    assert served == ["early step", "generate", "late step"]


def test_reentrant_and_only_the_holder_releases():
    lock = DeadlineLock()
    with lock, lock.hold(Urgency.BATCH):  # the holder re-enters without waiting
        assert lock.held_by_me()
        errors: list[BaseException] = []
        t = threading.Thread(target=lambda: errors.append(pytest.raises(RuntimeError, lock.release)))
        t.start()
        t.join(5)
        assert errors and errors[0].value.args[0].startswith("release() of a DeadlineLock")
    assert not lock.held_by_me()
    got = []
    t = threading.Thread(target=lambda: got.append(lock.acquire() or lock.release() or True))
    t.start()
    t.join(5)
    assert got == [True]  # fully released: another thread takes it


def test_urgency_context_nests_keeps_the_more_urgent_and_follows_copied_contexts():
    assert context_urgency() is None and more_urgent(None, None) is Urgency.STEP
    with urgency(Urgency.PRESENTER):
        with urgency(Urgency.BATCH):  # a long call inside the presenter's request stays the presenter's
            assert context_urgency() is Urgency.PRESENTER
        seen: list = []
        ctx = contextvars.copy_context()
        threading.Thread(target=ctx.run, args=(lambda: seen.append(context_urgency()),)).start()
        wait_until(lambda: seen)
        plain: list = []
        threading.Thread(target=lambda: plain.append(context_urgency())).start()
        wait_until(lambda: plain)
    assert seen == [Urgency.PRESENTER] and plain == [None]  # a plain thread starts from an empty context
    assert context_urgency() is None


def test_the_holder_gives_way_between_tokens_and_comes_back_before_later_calls():
    """A holder that calls yield_turn() lets an earlier deadline through, leaving and re-entering its frames,
    and resumes before a call that arrived with a later deadline."""
    lock = DeadlineLock()
    log: list[str] = []
    started, go = threading.Event(), threading.Event()

    def frame(name: str):
        return lock.keeping(lambda: log.append(f"leave {name}"), lambda: log.append(f"back {name}"))

    def holder() -> None:
        with lock.hold(Urgency.GENERATE, reader=True), frame("outer"), frame("inner"):
            started.set()
            go.wait(5)
            log.append(f"yield: {lock.yield_turn()}")
            log.append(f"again: {lock.yield_turn()}")  # nobody more urgent now (the batch call is later)
            log.append("holder done")

    def call(name: str, level: Urgency, context: Urgency | None = None, reader: bool = True) -> None:
        with urgency(context) if context else contextlib.nullcontext(), lock.hold(level, reader=reader):
            log.append(name)

    h = threading.Thread(target=holder)
    h.start()
    started.wait(5)
    waiters = [threading.Thread(target=call, args=("batch", Urgency.BATCH)),
               # an adapter swap or a model load (not a reader): never overtakes, never slips into a pause
               threading.Thread(target=call, args=("writer", Urgency.STEP, Urgency.PRESENTER, False)),
               threading.Thread(target=call, args=("presenter", Urgency.STEP, Urgency.PRESENTER))]
    for n, t in enumerate(waiters, 1):
        t.start()
        wait_until(lambda n=n: lock.waiting() == n)
    go.set()
    for t in (h, *waiters):
        t.join(5)
    assert log == ["leave inner", "leave outer", "presenter", "back outer", "back inner", "yield: True",
                   "again: False", "holder done", "writer", "batch"]
    writer_pauses: list[bool] = []

    def writer_holder() -> None:  # a load or an adapter swap never pauses, even for the presenter
        with lock.hold(Urgency.STEP):
            started.set()
            wait_until(lambda: lock.waiting() == 1)
            writer_pauses.append(lock.yield_turn())

    started.clear()
    w = threading.Thread(target=writer_holder)
    w.start()
    started.wait(5)
    p = threading.Thread(target=call, args=("presenter again", Urgency.STEP, Urgency.PRESENTER))
    p.start()
    for t in (w, p):
        t.join(5)
    assert writer_pauses == [False] and log[-1] == "presenter again"
    with pytest.raises(RuntimeError, match="keeping\\(\\) outside a hold"):
        with lock.keeping(lambda: None, lambda: None):
            pass
