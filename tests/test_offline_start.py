"""Starting the app on the bundled model makes no outbound connection (no analytics, no hub calls)."""

import os
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import BUNDLED_DATA_DIR, ROOT, free_port, wait_http

# Loaded into the app process through PYTHONPATH: records every non-loopback connect attempt.
SITECUSTOMIZE = '''
import os, socket
_log = os.environ["PG_CONNECT_LOG"]
_orig = socket.socket.connect
def _connect(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if not (str(host).startswith("127.") or host in ("::1", "localhost") or self.family == socket.AF_UNIX):
        with open(_log, "a") as f:
            f.write(f"{host}\\n")
    return _orig(self, address)
socket.socket.connect = _connect
'''


@pytest.mark.slow
def test_app_start_makes_no_outbound_connections(tmp_path, bundled_store):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "connects.log"
    log.write_text("")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "GRADIO_ANALYTICS_ENABLED")}
    env.update(PYTHONPATH=str(tmp_path), PG_CONNECT_LOG=str(log))
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir",
                             str(BUNDLED_DATA_DIR)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, 180, proc)
        with urllib.request.urlopen(url + "config", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert log.read_text() == ""
