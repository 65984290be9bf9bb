"""Without a network the app turns on the hub's offline mode at start, so a hub id that is not in the cache is
refused at once instead of after huggingface_hub's ~25 s of retries per file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from playground.model.hub import endpoint, offline_unless_reachable

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_hub_turns_on_offline_mode_and_says_so():
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    line = offline_unless_reachable(env)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert line.startswith("The Hugging Face hub (127.0.0.1) cannot be reached: offline mode")


def test_a_reachable_hub_or_the_operators_choice_is_left_alone():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}"}
        assert offline_unless_reachable(env) is None and "HF_HUB_OFFLINE" not in env
    for chosen in ({"HF_HUB_OFFLINE": "0"}, {"HF_HUB_OFFLINE": "1"}, {"TRANSFORMERS_OFFLINE": "0"},
                   {"HTTPS_PROXY": "http://proxy.lan:3128"}):  # behind a proxy a direct connect proves nothing
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", **chosen}
        assert offline_unless_reachable(env) is None and env == {**chosen, "HF_ENDPOINT": env["HF_ENDPOINT"]}


def test_the_endpoint_is_the_one_huggingface_hub_calls():
    assert endpoint({}) == ("huggingface.co", 443)
    assert endpoint({"HF_ENDPOINT": "https://hf-mirror.example:8443/"}) == ("hf-mirror.example", 8443)
    assert endpoint({"HF_ENDPOINT": "http://10.0.0.5"}) == ("10.0.0.5", 80)


def test_the_app_refuses_an_uncached_hub_model_without_the_hubs_retries(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--model", "someorg/not-cached-model",
                           "--data-dir", str(tmp_path / "data")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 2
    assert "cannot be reached: offline mode" in done.stdout
    assert "someorg/not-cached-model is not available offline" in done.stderr
    assert "Retrying in" not in done.stdout + done.stderr  # huggingface_hub's back-off never started
