"""Shared fixtures: tiny random models (fast), the real bundled model (cached once per machine),
and a real app server + headless Chromium for browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `pytest` as well as `python -m pytest` imports the project
    sys.path.insert(0, str(ROOT))
ARTIFACTS = ROOT / "tests" / "artifacts"
# Converted bundled weights are kept between runs (git-ignored) so only the first run pays ~30 s.
BUNDLED_DATA_DIR = ROOT / ".data" / "test-cache"
CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, os.cpu_count() or 1))


# One tiny config per family named in the course material (no downloads: random weights).
TINY_FAMILIES = {
    "llama": ("LlamaConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2)),
    "gpt2": ("GPT2Config", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128)),
    "phi3": ("Phi3Config", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, pad_token_id=0)),
    "mistral": ("MistralConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2)),
    "gpt_neox": ("GPTNeoXConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=4)),
    "opt": ("OPTConfig", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                              word_embed_proj_dim=32, max_position_embeddings=128)),
    "falcon": ("FalconConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    new_decoder_architecture=False, multi_query=True)),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the real app in headless Chromium")
    config.addinivalue_line("markers", "slow: loads the real bundled model or trains")


# ---------------------------------------------------------------- models

@pytest.fixture(scope="session")
def bundled_store():
    """A ModelStore with the real bundled SmolLM2-135M-Instruct (fp32, CPU)."""
    from playground.model.store import LoadSettings, ModelStore

    store = ModelStore(LoadSettings(data_dir=BUNDLED_DATA_DIR))
    store.load()
    return store


@pytest.fixture(scope="session")
def bundled_checkpoint(bundled_store) -> Path:
    """The plain safetensors checkpoint of the bundled model (for loading more copies)."""
    return bundled_store.current.checkpoint_dir


@pytest.fixture(scope="session")
def smol_tokenizer_dir(bundled_checkpoint, tmp_path_factory) -> Path:
    """Only the tokenizer files of the bundled model: real vocab + chat template, no weights."""
    out = tmp_path_factory.mktemp("smol-tokenizer")
    for f in bundled_checkpoint.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


def make_tiny_llama(path: Path, tokenizer_dir: Path, seed: int = 0, **overrides) -> Path:
    """Save a tiny random-weight Llama with the real SmolLM2 tokenizer to `path`."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
               bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               tie_word_embeddings=True)
    cfg.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


# dims in multiples of 32 (hidden 64, heads of 32, MLP 128), as real models have: oneDNN picks its kernels by shape
TINY32 = dict(hidden_size=64, intermediate_size=128, num_attention_heads=2, num_key_value_heads=1, head_dim=32)


@pytest.fixture(scope="module")
def tiny32_dir(smol_tokenizer_dir, tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("tiny32"), smol_tokenizer_dir, seed=3, **TINY32)


@pytest.fixture(scope="session")
def tiny_llama_dir(smol_tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny random Llama checkpoint (2 layers, hidden 32) with the SmolLM2 tokenizer."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), smol_tokenizer_dir)


@pytest.fixture()
def tiny_store(tiny_llama_dir, tmp_path):
    """A ModelStore holding a fresh copy of the tiny Llama, with its own data dir."""
    from playground.model.store import LoadSettings, ModelStore

    store = ModelStore(LoadSettings(source=str(tiny_llama_dir), data_dir=tmp_path / "data"))
    store.load()
    return store


# ---------------------------------------------------------------- app server + browser

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"app exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@pytest.fixture(scope="session")
def start_app(tmp_path_factory) -> Iterator[Callable[..., str]]:
    """Factory: start `python app.py ARGS` on a free port; returns its URL. All stopped at session end."""
    procs: list[tuple[subprocess.Popen, object]] = []

    def _start(*args: str, data_dir: Path | None = None) -> str:
        port = free_port()
        data = data_dir or BUNDLED_DATA_DIR
        log = open(tmp_path_factory.mktemp("applog") / "app.log", "w+")
        cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--data-dir", str(data), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_http(url, 180, proc)
        except Exception:
            log.seek(0)
            raise RuntimeError(f"app failed to start:\n{log.read()[-4000:]}")
        return url

    yield _start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_data_dir(bundled_store) -> Path:
    """The shared app's data dir: a temp folder (adapters/runs start empty) with the converted bundled model."""
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="pg-app-data-"))
    (data / "models").mkdir(parents=True)
    # Reuse the converted bundled weights instead of converting again.
    for d in (BUNDLED_DATA_DIR / "models").glob("*"):
        if d.is_dir() and not d.name.startswith("."):
            os.symlink(d, data / "models" / d.name)
    return data


@pytest.fixture(scope="session")
def app_url(start_app, app_data_dir) -> str:
    """One shared app on the bundled model (see app_data_dir)."""
    return start_app(data_dir=app_data_dir)


@pytest.fixture(scope="session")
def browser(bundled_store):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _new_page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    return context, pg


@pytest.fixture()
def page(browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context, pg = _new_page(browser)
    yield pg
    context.close()


@pytest.fixture()
def second(browser):
    """A second browser context: its own cookies, storage and Gradio session (another person's browser)."""
    context, pg = _new_page(browser)
    yield pg
    context.close()


def set_slider(page, elem_id: str, value) -> None:
    """Type a value into a Gradio slider's number box (or a number field) as a user does. A slider in an accordion
    that just opened mounts as it opens: a value typed before the box holds its own can be overwritten by the mount
    (seen in loaded CI runs), so wait until the box has a value first."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    selector = f"#{elem_id} input[type=number]"
    page.wait_for_function("s => !!document.querySelector(s)?.value", arg=selector)
    number = page.locator(selector).first
    for _ in range(3):  # a redraw landing just after the Enter can still put the old value back: type it again
        number.fill(str(value))
        number.press("Enter")
        page.wait_for_timeout(300)
        try:
            page.wait_for_function("([s, v]) => document.querySelector(s)?.value === v", arg=[selector, str(value)],
                                   timeout=2_000)
            return
        except PlaywrightTimeout:  # overwritten, or clamped into the slider's range (then the box is right)
            continue
