"""The model lock hands itself out by deadline (model/turns.py); the presenter's browser goes first (ui/turns.py)."""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from test_adapters_fixtures import make_adapter, manager  # noqa: F401

from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService
from playground.decode.stream import GenerateRequest, generate_all
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


class FakeRooms:
    def __init__(self, owners: set[str]) -> None:
        self.owners = owners

    def owned_by(self, session: str) -> str | None:
        return "ABCD" if session in self.owners else None


@pytest.mark.parametrize("session,expected", [("projector", Urgency.PRESENTER), ("student", None), ("", None)])
def test_presenter_first_marks_only_the_room_owners_calls(monkeypatch, session, expected):
    from gradio.context import LocalContext

    from playground.ui.turns import presenter_first

    rooms = FakeRooms({"projector"})
    token = LocalContext.request.set(SimpleNamespace(session_hash=session) if session else None)
    try:
        plain = presenter_first(rooms, lambda x: (x, context_urgency()))
        assert plain(7) == (7, expected)

        def gen(n):
            for i in range(n):
                yield i, context_urgency()
        steps = presenter_first(rooms, gen)
        assert list(steps(3)) == [(i, expected) for i in range(3)]
    finally:
        LocalContext.request.reset(token)
    assert context_urgency() is None  # nothing leaks out of the call


def test_a_presenter_generation_takes_the_lock_at_presenter_urgency_from_its_worker_thread(tiny_store):
    """decode/stream.py generates in its own thread: the request's urgency must reach the lock from there."""
    seen: list = []
    real = tiny_store._lock.acquire

    def spy(level=None, timeout=None, reader=False):
        if threading.current_thread().name == "decode-generate":
            seen.append((more_urgent(level, context_urgency()), reader))
        return real(level, timeout, reader)

    tiny_store._lock.acquire = spy
    ids = tiny_store.current.tokenizer("Hello there", return_tensors="pt")["input_ids"][0].tolist()
    request = GenerateRequest(tuple(ids), SamplingSettings(temperature=0.0), 3, 0)
    with torch.inference_mode():
        generate_all(tiny_store, request)
        with urgency(Urgency.PRESENTER):
            generate_all(tiny_store, request)
    assert seen == [(Urgency.GENERATE, True), (Urgency.PRESENTER, True)]


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


@contextlib.contextmanager
def presenter_on_third_step(store, presenter):
    """While the block generates: its 3rd forward starts `presenter` in a thread and waits until it queues."""
    calls = [0]

    def hold_on_third_step(*_):
        if threading.current_thread().name == "decode-generate":
            calls[0] += 1
            if calls[0] == 3:
                threading.Thread(target=presenter, name="presenter").start()
                wait_until(lambda: store._lock.waiting() == 1)

    hook = store.current.base_model.register_forward_hook(hold_on_third_step)
    try:
        yield
    finally:
        hook.remove()


def test_a_generation_that_gives_way_keeps_its_adapter_and_its_tokens(manager):
    """A student's generation on adapter 'alpha' is interrupted by the presenter's next-token on the server's
    default (the base): each gets exactly what it gets alone (the RNG and the adapter are put back)."""
    store = manager.store
    student = manager.view("alpha")
    request = GenerateRequest((1, 5, 9, 42, 7, 3), SamplingSettings(temperature=1.0, top_k=0), 12, 7)
    alone = [t.token_id for t in generate_all(student, request)]
    prompt = (1, 5, 9, 42)
    base_alone = DecodeService(store).distribution(prompt, SamplingSettings()).raw_probs
    presenter_request = GenerateRequest(prompt, SamplingSettings(temperature=1.0, top_k=0), 2, 123)
    presenter_alone = [t.token_id for t in generate_all(store, presenter_request)]
    pauses: list[bool] = []
    real_yield = store.yield_turn
    store.yield_turn = lambda: pauses.append(real_yield()) or pauses[-1]
    presenter_got: list[torch.Tensor] = []

    def presenter() -> None:  # a next-token distribution and a seeded sample (which reseeds torch's RNG)
        with urgency(Urgency.PRESENTER):
            presenter_got.append(DecodeService(store).distribution(prompt, SamplingSettings()).raw_probs)
            presenter_got.append([t.token_id for t in generate_all(store, presenter_request)])

    with presenter_on_third_step(store, presenter):
        tokens = [t.token_id for t in generate_all(student, request)]
    wait_until(lambda: len(presenter_got) == 2)
    assert True in pauses  # it gave way (once per lock hold of the presenter: 3 here)
    assert tokens == alone
    assert torch.equal(presenter_got[0], base_alone) and presenter_got[1] == presenter_alone
    assert manager.active() is None and store.current.active_adapter is None


def test_a_base_generation_that_gives_way_keeps_the_adapter_off(manager):
    """The server's default is the base with adapter 'alpha' loaded: a generation runs inside PEFT's
    `disable_adapter()`. The presenter's calls in between, on 'alpha' (its layers on, then off again) and on
    the base (a `disable_adapter()` of its own, nested in the generation's), must not leave alpha on for the
    rest of the generation."""
    store = manager.store
    request = GenerateRequest((1, 5, 9, 42, 7, 3), SamplingSettings(temperature=1.0, top_k=0), 12, 7)
    prompt = (1, 5, 9, 42)
    alpha_alone = DecodeService(manager.view("alpha")).distribution(prompt, SamplingSettings()).raw_probs
    assert manager.active() is None and store.current.model.peft_config  # alpha is loaded, the base is on
    alone = [t.token_id for t in generate_all(manager.view(None), request)]
    pauses: list[bool] = []
    real_yield = store.yield_turn
    store.yield_turn = lambda: pauses.append(real_yield()) or pauses[-1]
    base_alone = DecodeService(manager.view(None)).distribution(prompt, SamplingSettings()).raw_probs
    presenter_got: list[torch.Tensor] = []

    def presenter() -> None:
        with urgency(Urgency.PRESENTER):
            for name in ("alpha", None):
                view = DecodeService(manager.view(name))
                presenter_got.append(view.distribution(prompt, SamplingSettings()).raw_probs)

    with presenter_on_third_step(store, presenter):
        tokens = [t.token_id for t in generate_all(manager.view(None), request)]
    wait_until(lambda: len(presenter_got) == 2)
    assert True in pauses
    assert torch.equal(presenter_got[0], alpha_alone) and torch.equal(presenter_got[1], base_alone)
    assert tokens == alone  # and the generation went on without it
    assert [t.token_id for t in generate_all(manager.view(None), request)] == alone  # PEFT's state is whole
    assert torch.equal(DecodeService(manager.view("alpha")).distribution(prompt, SamplingSettings()).raw_probs,
                       alpha_alone)


def test_through_gradio_the_room_owners_api_calls_run_at_presenter_urgency():
    """The session really comes from Gradio's per-event context: a real server, two real clients."""
    import gradio as gr
    from gradio_client import Client

    from playground.ui.turns import presenter_first
    from tests.conftest import free_port

    rooms = FakeRooms(set())

    def probe(text: str) -> str:
        """The urgency this call's model work would run at."""
        return f"{text}: {context_urgency()}"

    def probe_stream(text: str):
        for i in range(2):
            yield f"{text}{i}: {context_urgency()}"

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.api(presenter_first(rooms, probe), api_name="probe")
        box = gr.Textbox()
        gr.Button().click(presenter_first(rooms, probe_stream), box, box, api_name="probe_stream")
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        projector = Client(f"http://127.0.0.1:{port}/", verbose=False)
        student = Client(f"http://127.0.0.1:{port}/", verbose=False)
        rooms.owners.add(projector.session_hash)  # the projector opened a room
        assert projector.predict("p", api_name="/probe") == "p: Urgency.PRESENTER"
        assert student.predict("s", api_name="/probe") == "s: None"
        assert projector.predict("p", api_name="/probe_stream") == "p1: Urgency.PRESENTER"
        assert student.predict("s", api_name="/probe_stream") == "s1: None"
    finally:
        demo.close(verbose=False)
