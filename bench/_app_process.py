"""The app as a child process, for the benches that talk to it over HTTP (classroom, startup): a free port,
start, wait for HTTP 200, stop (its whole process group), and CPU seconds read from /proc.

Used as `from _app_process import ...` by a bench in bench/ (Python puts bench/ on sys.path).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from _common import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, data: Path, log_path: Path, extra: Sequence[str] = ()) -> subprocess.Popen:
    """`python app.py` on `port` with `data` as its data dir; stdout and stderr go to `log_path`. It runs in a
    session of its own so that `stop_app` can stop whatever it starts (the training worker)."""
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data), *extra]
    out = open(log_path, "wb")  # noqa: SIM115 (the child writes to it for the whole run)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float = 600, poll: float = 0.25) -> float:
    """Seconds until `url` answers 200; exits with the log's tail if the app dies first. `poll` bounds the
    error of the figure (the startup bench polls finely)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t
        except OSError:
            pass
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the app exited with {proc.returncode}:\n{tail}")
        time.sleep(poll)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise SystemExit(f"the app was not ready after {timeout:.0f} s:\n{tail}")


def stop_app(proc: subprocess.Popen) -> None:
    """Stop the app and anything it started (its own process group): SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system, all threads) a process has used: this one (pid None) or another's."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
