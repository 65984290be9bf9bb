"""The presenter's browser goes first (ui/turns.py): the room owner's calls run at presenter urgency, from
worker threads and through Gradio, and a student generation that gives way keeps its adapter and tokens."""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import pytest
import torch
from test_adapters_fixtures import manager  # noqa: F401 (a fixture)
from test_turns import wait_until

from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService
from playground.decode.stream import GenerateRequest, generate_all
from playground.model.turns import Urgency, context_urgency, more_urgent, urgency


class FakeRooms:
    def __init__(self, owners: set[str]) -> None:
        self.owners = owners

    def presenting(self, session: str) -> bool:  # RoomHub.presenting: a room with an audience
        return session in self.owners


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
