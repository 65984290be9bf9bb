"""Classroom load benchmark: N simulated students and one presenter on one app, over the API (gradio_client).

The app runs as a subprocess on the bundled model (CPU unless a GPU is there), with a fresh data dir that
reuses the converted weights from the test cache. Each gradio_client `Client` is one browser session:

* the presenter opens a poll room, then steps tokens for the whole run (`/next_token` on a growing prompt,
  the top row's token appended, as the Decode tab's Greedy does) about once a second, and every ~20 s
  reveals the round (`/room_reveal`) and, a few seconds later, starts the next one (`/room_next`);
* each student (one thread, all released together by a barrier) joins the room once, then loops over a
  shuffled mix with a random think time (seeded) between actions: `/next_token` on one of its prompts with
  two random settings (a slider move), a step-through step (`/next_token` on its own growing prompt),
  a 16-token `/generate`, a Compare turn (`/compare`, 16 new tokens), and a vote (`/room_state`, then
  `/room_vote` for one of the round's choices unless the round is already revealed).

Before the load, `single_user` measures the same calls from one client alone (after one unrecorded warm-up
round): the p50 per endpoint. Every request records endpoint, start, latency and error. A vote that arrives
just after the presenter's reveal is refused by the app ("Voting for round N is over"); that is the app
working as intended, so it is counted in `refused`, not in `errors`.

Goals (2-core CPU, 30 students): 0 errors, presenter step p95 <= 1.5 s, student next-token p95 <= 5 s, and
a fair queue: `max_wait_s` (the longest single student request) <= 3x the p95 of all student requests.

Run: `.venv/bin/python bench/classroom.py [--students 30] [--seconds 120]`. Progress goes to stderr; the
last line of stdout is one JSON object. The people are in `_classroom_people.py`, the app process in
`_app_process.py`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from _common import emit, link_converted_models  # noqa: E402  (sets up sys.path and offline mode)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # gradio_client would otherwise phone home

from _app_process import cpu_seconds, free_port, start_app, stop_app, wait_ready  # noqa: E402
from _classroom_people import (  # noqa: E402
    PRESENTER_PROMPT, ROOM_PROMPT, Recorder, Stepper, compare, generate, log, new_client, percentile,
    presenter_loop, r3, random_prompt, random_settings, student_loop, vote,
)


GOAL_PRESENTER_P95_S = 1.5
GOAL_STUDENT_NEXT_TOKEN_P95_S = 5.0
GOAL_FAIRNESS = 3.0


# ---------------------------------------------------------------------------------------------------- phases

def single_user(url: str, rounds: int, seed: int) -> dict[str, float]:
    """The same calls from one client alone (one unrecorded warm-up round, then `rounds` alternating):
    the p50 latency per endpoint."""
    rng = random.Random(seed)
    rec = Recorder()
    client = new_client(url)
    stepper = Stepper(PRESENTER_PROMPT)
    try:
        for r in range(rounds + 1):
            if r == 0:
                target = Recorder()  # the warm-up round: measured nowhere
            else:
                target = rec
            prompt = random_prompt(rng)
            for _ in range(2):
                target.call(client, "single", "next_token", prompt, False, **random_settings(rng))
            stepper.step(target, client, "single")
            generate(target, client, "single", rng)
            compare(target, client, "single", rng)
            room = target.call(client, "single", "room_open", ROOM_PROMPT, False)
            if room:
                code = room["code"]
                target.call(client, "single", "room_join", code, "solo")
                vote(target, client, "single", code, rng)
                target.call(client, "single", "room_reveal", code)
                target.call(client, "single", "room_next", code)
                target.call(client, "single", "room_close", code)
    finally:
        client.close()
    errors = [r for r in rec.records if r.error]
    if errors:
        log(f"single-user phase: {len(errors)} errors")
    by: dict[str, list[float]] = {}
    for r in rec.records:
        if not r.error:
            by.setdefault(r.endpoint, []).append(r.latency)
    return {ep: r3(percentile(v, 50)) for ep, v in sorted(by.items())}


def progress(rec: Recorder, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        with rec.lock:
            records = list(rec.records)
            flying = rec.in_flight
        recent = [r for r in records if r.start > time.perf_counter() - rec.t0 - every - 30]
        pres = [r.latency for r in records if r.who == "presenter" and r.endpoint == "next_token"]
        log(f"t={time.perf_counter() - rec.t0:5.0f} s  requests={len(records)}  in flight={flying}  "
            f"errors={sum(1 for r in records if r.error)}  "
            f"recent p95={r3(percentile([r.latency for r in recent], 95))} s  "
            f"presenter step p95={r3(percentile(pres, 95))} s  load={os.getloadavg()[0]:.2f}")


def load_phase(url: str, args, app_pid: int | None) -> tuple[Recorder, int, dict]:
    rec = Recorder()
    log(f"connecting the presenter and {args.students} students")
    presenter = new_client(url)
    room = presenter.predict(ROOM_PROMPT, False, api_name="/room_open")
    code = room["code"]
    clients: list = [None] * args.students

    def connect(i: int) -> None:
        clients[i] = new_client(url)

    connectors = [threading.Thread(target=connect, args=(i,)) for i in range(args.students)]
    for t in connectors:
        t.start()
    for t in connectors:
        t.join()
    if any(c is None for c in clients):
        raise SystemExit("some students could not connect")

    barrier = threading.Barrier(args.students + 1)
    deadline = [0.0]

    def student(i: int) -> None:
        barrier.wait()
        student_loop(rec, clients[i], f"student-{i}", code, deadline[0], random.Random(args.seed * 1000 + i),
                     (args.think_min, args.think_max))

    threads = [threading.Thread(target=student, args=(i,), daemon=True) for i in range(args.students)]
    for t in threads:
        t.start()
    stop = threading.Event()
    reporter = threading.Thread(target=progress, args=(rec, stop, args.progress_s), daemon=True)
    cpu0 = (cpu_seconds(app_pid) if app_pid else None, cpu_seconds(None))
    rec.t0 = time.perf_counter()
    deadline[0] = rec.t0 + args.seconds
    barrier.wait()
    log(f"room {code}: load for {args.seconds:.0f} s")
    reporter.start()
    try:
        presenter_loop(rec, presenter, code, deadline[0], args.presenter_period, args.round_s, args.reveal_pause)
        grace = time.perf_counter() + args.grace_s  # requests started before the deadline may finish
        for t in threads:
            t.join(max(0.0, grace - time.perf_counter()))
    finally:
        stop.set()
    wall = time.perf_counter() - rec.t0
    cpu1 = (cpu_seconds(app_pid) if app_pid else None, cpu_seconds(None))
    cpu = {"app_cpu_cores": None if None in (cpu0[0], cpu1[0]) else round((cpu1[0] - cpu0[0]) / wall, 2),
           "bench_cpu_cores": round((cpu1[1] - cpu0[1]) / wall, 2)}  # the simulated browsers share the CPU
    unfinished = sum(1 for t in threads if t.is_alive())
    for c in [presenter, *clients]:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    return rec, unfinished, cpu


# ---------------------------------------------------------------------------------------------------- report

def summarize(rec: Recorder, unfinished: int, single: dict, cpu: dict, args) -> dict:
    records = list(rec.records)
    ok = [r for r in records if not r.error]
    by: dict[str, list[float]] = {}
    for r in ok:
        by.setdefault(r.endpoint, []).append(r.latency)
    students = [r for r in ok if r.who.startswith("student")]
    student_lat = [r.latency for r in students]
    presenter_steps = [r.latency for r in ok if r.who == "presenter" and r.endpoint == "next_token"]
    student_nt = [r.latency for r in students if r.endpoint == "next_token"]
    errors = sum(1 for r in records if r.error) + unfinished
    presenter_p95 = percentile(presenter_steps, 95)
    student_nt_p95 = percentile(student_nt, 95)
    student_p95 = percentile(student_lat, 95)
    max_wait = max(student_lat, default=None)
    per_student: dict[str, int] = {f"student-{i}": 0 for i in range(args.students)}
    for r in students:
        per_student[r.who] += 1
    return {
        "students": args.students, "seconds": args.seconds, "requests": len(records), "errors": errors,
        "refused": sum(1 for r in records if r.refused),
        "p50_s": {ep: r3(percentile(v, 50)) for ep, v in sorted(by.items())},
        "p95_s": {ep: r3(percentile(v, 95)) for ep, v in sorted(by.items())},
        "count": {ep: len(v) for ep, v in sorted(by.items())},
        "presenter_step_p95_s": r3(presenter_p95), "presenter_steps": len(presenter_steps),
        "student_next_token_p95_s": r3(student_nt_p95), "student_p95_s": r3(student_p95),
        "max_wait_s": r3(max_wait),
        "requests_per_student_min_max": [min(per_student.values()), max(per_student.values())],
        "single_user": single,
        "load_avg_1m": round(os.getloadavg()[0], 2), **cpu,
        "goal_met_errors": errors == 0,
        "goal_met_presenter": presenter_p95 is not None and presenter_p95 <= GOAL_PRESENTER_P95_S,
        "goal_met_student_next_token": student_nt_p95 is not None and student_nt_p95 <= GOAL_STUDENT_NEXT_TOKEN_P95_S,
        "goal_met_fair": max_wait is not None and student_p95 is not None and max_wait <= GOAL_FAIRNESS * student_p95,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--seconds", type=float, default=120, help="length of the load phase")
    p.add_argument("--port", type=int, default=0, help="the app's port (default: a free one)")
    p.add_argument("--url", default=None, help="use an app already running there instead of starting one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--think-min", type=float, default=1.0, help="a student's pause between actions (s)")
    p.add_argument("--think-max", type=float, default=4.0)
    p.add_argument("--presenter-period", type=float, default=1.0, help="seconds between the presenter's steps")
    p.add_argument("--round-s", type=float, default=20.0, help="seconds per poll round (reveal + next)")
    p.add_argument("--reveal-pause", type=float, default=3.0, help="seconds between a reveal and the next round")
    p.add_argument("--single-rounds", type=int, default=3, help="single-user rounds (after one warm-up round)")
    p.add_argument("--grace-s", type=float, default=180, help="how long in-flight requests may finish after the end")
    p.add_argument("--progress-s", type=float, default=10, help="seconds between progress lines on stderr")
    p.add_argument("--app-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for app.py (repeatable), e.g. --app-arg=--threads=2")
    args = p.parse_args(argv)
    if args.students < 1 or args.seconds <= 0 or not 0 <= args.think_min <= args.think_max:
        p.error("--students >= 1, --seconds > 0 and 0 <= --think-min <= --think-max")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    proc = data = None
    try:
        if args.url:
            url = args.url.rstrip("/") + "/"
        else:
            data = Path(tempfile.mkdtemp(prefix="pg-bench-classroom-"))
            link_converted_models(data)
            port = args.port or free_port()
            url = f"http://127.0.0.1:{port}/"
            log_path = data / "app.log"
            log(f"starting app.py on port {port} {' '.join(args.app_arg)} (log: {log_path})")
            proc = start_app(port, data, log_path, args.app_arg)
            log(f"app ready in {wait_ready(proc, url, log_path):.1f} s")
        log(f"single-user baseline ({args.single_rounds} rounds)")
        single = single_user(url, args.single_rounds, args.seed + 12345)
        log(f"single-user p50: {single}")
        rec, unfinished, cpu = load_phase(url, args, proc.pid if proc is not None else None)
        if unfinished:
            log(f"{unfinished} students still had a request in flight {args.grace_s:.0f} s after the end")
        result = summarize(rec, unfinished, single, cpu, args)
    finally:
        if proc is not None:
            stop_app(proc)
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
    emit(result)


if __name__ == "__main__":
    main()
