"""A GGUF file converted once into a plain safetensors checkpoint under `<data-dir>/models/`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch

from playground.fsutil import atomic_dir

Progress = Callable[[str], None]


def _file_key(path: Path) -> str:
    """Cheap identity of a weights file: name, size and a hash of its first and last MiB."""
    h = hashlib.sha256(f"{path.name}:{path.stat().st_size}".encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def gguf_cache_dir(gguf_path: Path, data_dir: Path) -> Path:
    return data_dir / "models" / f"{gguf_path.stem}-{_file_key(gguf_path)}"


def convert_gguf(gguf_path: Path, data_dir: Path, progress: Progress | None = None) -> tuple[Path, bool]:
    """Return a plain safetensors checkpoint for a GGUF file, converting it once.

    Transformers dequantizes GGUF on load but marks the model as quantized and refuses
    `save_pretrained`; clearing `hf_quantizer` and `quantization_config` makes it a plain model.
    The checkpoint is written to a temp dir and renamed, so a crash never leaves half a cache.
    Returns (dir, was_cached).
    """
    target = gguf_cache_dir(gguf_path, data_dir)
    if (target / "config.json").is_file():
        return target, True
    say = progress or (lambda _msg: None)
    say(f"Converting {gguf_path.name} to a safetensors cache (first run only, ~30 s)…")
    try:
        with atomic_dir(target) as tmp:
            _write_plain_checkpoint(gguf_path, tmp, say)
    except OSError:  # FileExistsError included: another process converted it meanwhile: keep theirs
        if not (target / "config.json").is_file():
            raise
    say("Conversion done.")
    return target, False


def _write_plain_checkpoint(gguf_path: Path, tmp: Path, say: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.hf_quantizer = None
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    say("Writing the converted checkpoint…")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "playground-source.json").write_text(json.dumps({"gguf": str(gguf_path)}))
