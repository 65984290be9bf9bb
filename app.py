"""LLM Playground: see how a model picks its next token, train a LoRA adapter by clicking, compare.

Run `python app.py --help` for the flags. Services are created here and passed to the UI; nothing
model-related lives at module level.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# No analytics and no hub calls at start; set before gradio / huggingface_hub are imported.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CALLS_AT_ONCE = 64  # calls per event Gradio lets through to the model lock (a room of 30-40 students + projector)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from playground.model.sources import DEFAULT_DATA_DIR, DTYPE_CHOICES

    p = argparse.ArgumentParser(description="LLM Playground: decoding, LoRA training and adapter comparison.")
    p.add_argument("--model", default="bundled",
                   help="'bundled' (SmolLM2-135M-Instruct), a hub id, a checkpoint folder or a .gguf file")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                   help=f"where converted models, adapters and runs live (default {DEFAULT_DATA_DIR})")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"], default=None, help="default: cuda > mps > cpu")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="weights' dtype. auto: bf16 on a GPU that has it (else fp16) and on a CPU with native bf16 "
                        "(AVX512-BF16 / AMX), else fp32. Training keeps its own precision (fp32 on a CPU)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch's CPU threads. Default: 1 on a machine with at most 2 CPUs (the server and the browser "
                        "need the other; 2 threads decode slower there), else torch's choice (one per core)")
    quant = p.add_mutually_exclusive_group()
    quant.add_argument("--load-in-4bit", action="store_true", help="NF4 + double quant via bitsandbytes")
    quant.add_argument("--load-in-8bit", action="store_true", help="LLM.int8 via bitsandbytes")
    p.add_argument("--auth", default=None, metavar="USER:PASS", help="require a login (use when sharing on a LAN)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow a hub model's own Python code to run")
    p.add_argument("--allow-path", action="append", type=Path, default=[], metavar="DIR",
                   help="a server folder the UI/API may read files from (repeatable); by default only uploads "
                        "and --data-dir")
    p.add_argument("--presenter", action="store_true",
                   help="start in presenter mode: large type, high contrast, for a projector (the header's "
                        "checkbox or ?presenter=0 turns it off in a page)")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads takes a positive number")
    if args.auth is not None and (":" not in args.auth or args.auth.startswith(":") or args.auth.endswith(":")):
        p.error("--auth takes USER:PASS")
    # Absolute paths: training workers run with the repository as their cwd, not the shell's.
    args.data_dir = args.data_dir.expanduser().resolve()
    args.allow_path = [d.expanduser().resolve() for d in args.allow_path]
    local = Path(args.model).expanduser()
    if args.model != "bundled" and (local.exists() or args.model.startswith((".", "~"))):
        args.model = str(local.resolve())
    return args


def exposure_warning(host: str, auth: str | None) -> str | None:
    """A loud warning when the app is reachable from other machines without a login."""
    if host in ("127.0.0.1", "localhost", "::1") or auth:
        return None
    return (f"WARNING: binding {host} without --auth: anyone on your network can use this app "
            "and run training on your machine. Add --auth user:pass.")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from playground.model.hub import offline_unless_reachable

    offline = offline_unless_reachable()  # before huggingface_hub is imported: it reads HF_HUB_OFFLINE then
    if offline:
        print(offline, flush=True)
    from playground.model.sources import ModelLoadError
    from playground.model.store import LoadSettings, ModelStore
    from playground.services import Services

    from playground.model.cpu_speed import app_threads

    threads = args.threads or app_threads(os.cpu_count())
    if threads:
        import torch

        torch.set_num_threads(threads)
    warning = exposure_warning(args.host, args.auth)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    quantization = "4bit" if args.load_in_4bit else "8bit" if args.load_in_8bit else "none"
    settings = LoadSettings(source=args.model, data_dir=args.data_dir, device=args.device,
                            quantization=quantization, trust_remote_code=args.trust_remote_code, dtype=args.dtype)
    store = ModelStore(settings)
    try:
        loaded = store.load(progress=lambda msg: print(msg, flush=True))
    except ModelLoadError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    packed = f", {loaded.cpu_packed} layers pre-packed, {loaded.cpu_fused} groups fused" if loaded.cpu_packed else ""
    print(f"Loaded {loaded.name} ({str(loaded.dtype).removeprefix('torch.')}{packed}) in {loaded.load_seconds:.1f} s",
          flush=True)

    services = Services.create(store, settings.data_dir, allowed_paths=args.allow_path)
    from playground.ui.app_ui import build_app

    demo = build_app(services, presenter=args.presenter)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    print(f"LLM Playground running at http://{args.host}:{args.port}", flush=True)
    launch_app(demo, host=args.host, port=args.port, auth=auth, presenter=args.presenter)


def launch_app(demo, *, host: str, port: int, auth: tuple[str, str] | None, presenter: bool = False) -> None:
    from playground.ui.app_ui import APP_CSS, APP_THEME
    from playground.ui.presenter import presenter_head

    # Every waiting call reaches the model lock, which picks the next by deadline (playground/model/turns.py:
    # the presenter first, short steps before long generations); a small per-event limit here would queue
    # the presenter behind students in Gradio's first-come queue instead. Waiting threads cost no CPU.
    demo.queue(default_concurrency_limit=CALLS_AT_ONCE).launch(
        server_name=host, server_port=port, auth=auth, share=False, show_error=False, max_threads=2 * CALLS_AT_ONCE,
        theme=APP_THEME, css=APP_CSS, head=presenter_head(presenter), footer_links=["api"], ssr_mode=False,
        enable_monitoring=False, max_file_size="200mb",
    )


if __name__ == "__main__":
    main()
