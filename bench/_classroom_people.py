"""The simulated people of the classroom bench (bench/classroom.py): a presenter stepping tokens and running poll
rounds, and students mixing slider moves, step-throughs, generations, Compare turns and votes. Every call goes
through a `Recorder`, which times it and keeps what happened (latency, error, or an expected refusal).

Used as `from _classroom_people import ...` by bench/classroom.py; it needs nothing from the app's code.
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from dataclasses import dataclass

ROOM_PROMPT = "The rain in Spain falls mainly in the"
PRESENTER_PROMPT = "Once upon a time, in a small village by the sea,"
SUBJECTS = ("a lighthouse keeper", "the moon", "my grandmother's kitchen", "a robot", "the ocean", "Paris",
            "a black cat", "photosynthesis", "the first day of school", "a thunderstorm", "football", "volcanoes")
TEMPLATES = ("Tell me a short story about {}.", "Here is a fact about {}:", "The best thing about {} is",
             "Write a poem about {}.", "Explain {} to a child.", "Once upon a time, {}")
VISIBLE = {"␣": " ", "↵": "\n", "⇥": "\t", "∅": ""}  # decode/tokens.visible, undone
STEP_RESET = 40  # a step-through prompt starts over after this many appended tokens


@dataclass
class Record:
    who: str          # "presenter", "student-7", "single"
    endpoint: str     # the api_name without the slash
    start: float      # seconds since the load phase began (or the single-user phase began)
    latency: float
    error: str | None = None
    refused: bool = False  # an expected refusal (a vote after the reveal), not an error


class Recorder:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.in_flight = 0

    def call(self, client, who: str, endpoint: str, *args, refusable: str | None = None, **kwargs):
        """client.predict(..., api_name=/endpoint), timed and recorded; returns the result or None on error."""
        with self.lock:
            self.in_flight += 1
        start = time.perf_counter()
        result, error, refused = None, None, False
        try:
            result = client.predict(*args, api_name=f"/{endpoint}", **kwargs)
        except Exception as err:  # noqa: BLE001 (every failure is data here)
            text = f"{type(err).__name__}: {err}"
            refused = bool(refusable and refusable in str(err))
            error = None if refused else text
        latency = time.perf_counter() - start
        with self.lock:
            self.in_flight -= 1
            self.records.append(Record(who, endpoint, start - self.t0, latency, error, refused))
        if error:
            log(f"ERROR {who} /{endpoint} after {latency:.2f} s: {error[:300]}")
        return result


def log(message: str) -> None:
    print(f"[classroom] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def new_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


# ---------------------------------------------------------------------------------------------------- calls

def random_settings(rng: random.Random) -> dict:
    """A student's knob values for /next_token (sometimes off, sometimes on)."""
    return dict(temperature=round(rng.choice([0.0, 0.3, 0.7, 1.0, 1.0, 1.3, 1.8]), 2),
                top_k=rng.choice([0, 10, 50, 50, 100]), top_p=rng.choice([1.0, 1.0, 0.95, 0.9, 0.5]),
                min_p=rng.choice([0.0, 0.0, 0.05, 0.1]), repetition_penalty=rng.choice([1.0, 1.0, 1.1, 1.3]),
                top_n=rng.choice([10, 20, 20, 50]))


def random_prompt(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(rng.choice(SUBJECTS))


def top_text(result) -> str | None:
    """The text of the top row's token (its label with whitespace made visible, undone); None for a special
    or byte-fragment token (the step-through then starts over)."""
    try:
        label = result["rows"][0]["token"]
    except (TypeError, KeyError, IndexError):
        return None
    if label.startswith("<|") or "\\x" in label:
        return None
    return "".join(VISIBLE.get(c, c) for c in label)


class Stepper:
    """A step-through over the stateless API: /next_token on the prompt grown by each top token's text."""

    def __init__(self, start: str) -> None:
        self.start, self.text, self.steps = start, start, 0

    def step(self, rec: Recorder, client, who: str, **settings) -> None:
        result = rec.call(client, who, "next_token", self.text, False, **settings)
        piece = top_text(result)
        if piece is None or self.steps >= STEP_RESET:
            self.text, self.steps = self.start, 0
        else:
            self.text, self.steps = self.text + piece, self.steps + 1


def generate(rec: Recorder, client, who: str, rng: random.Random) -> None:
    s = random_settings(rng)
    rec.call(client, who, "generate", random_prompt(rng), False, s["temperature"], s["top_k"], s["top_p"],
             s["min_p"], s["repetition_penalty"], 16, rng.randrange(1000))


def compare(rec: Recorder, client, who: str, rng: random.Random) -> None:
    settings = {"max_new_tokens": 16, "temperature": rng.choice([0.0, 0.7, 1.0]), "top_p": rng.choice([0.9, 1.0])}
    rec.call(client, who, "compare", random_prompt(rng), settings, rng.randrange(1000))


def vote(rec: Recorder, client, who: str, code: str, rng: random.Random) -> None:
    state = rec.call(client, who, "room_state", code)
    if not state or state.get("revealed") or not state.get("choices"):
        return  # the round is revealed: wait for the next one, as a student would
    rec.call(client, who, "room_vote", code, rng.choice(state["choices"]), refusable="Voting for round")


def presenter_loop(rec: Recorder, client, code: str, stop_at: float, period: float, round_s: float,
                   reveal_pause: float) -> None:
    stepper = Stepper(PRESENTER_PROMPT)
    next_reveal = rec.t0 + round_s
    next_round_at = None
    while True:
        now = time.perf_counter()
        if now >= stop_at:
            return
        if next_round_at is None and now >= next_reveal:
            rec.call(client, "presenter", "room_reveal", code)
            next_round_at = time.perf_counter() + reveal_pause
        elif next_round_at is not None and now >= next_round_at:
            rec.call(client, "presenter", "room_next", code)
            next_round_at, next_reveal = None, time.perf_counter() + round_s - reveal_pause
        began = time.perf_counter()
        stepper.step(rec, client, "presenter")  # default knobs: the top row is the greedy choice
        time.sleep(max(0.0, began + period - time.perf_counter()))


def student_loop(rec: Recorder, client, who: str, code: str, stop_at: float, rng: random.Random,
                 think: tuple[float, float]) -> None:
    stepper = Stepper(random_prompt(rng))

    def pause() -> bool:
        wait = rng.uniform(*think)
        if time.perf_counter() + wait >= stop_at:
            return False
        time.sleep(wait)
        return True

    if not pause():  # students arrive over the first few seconds, not all in the same millisecond
        return
    rec.call(client, who, "room_join", code, who)
    while True:
        prompt = random_prompt(rng)
        actions = ["next_token", "next_token", "step", "generate", "compare", "vote"]
        rng.shuffle(actions)
        for action in actions:
            if not pause():
                return
            if action == "next_token":
                rec.call(client, who, "next_token", prompt, False, **random_settings(rng))
            elif action == "step":
                stepper.step(rec, client, who, **random_settings(rng))
            elif action == "generate":
                generate(rec, client, who, rng)
            elif action == "compare":
                compare(rec, client, who, rng)
            else:
                vote(rec, client, who, code, rng)

