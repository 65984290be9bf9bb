"""Loading the base model: where it comes from, which device/dtype, and the ModelStore that owns it.

Gradio-free. The app creates one `ModelStore` and passes it to every tab; all model users take `store.use()`
(a re-entrant lock) so a generation, an adapter swap and a model switch never interleave. The lock goes by
deadline (model/turns.py): the presenter's steps first, short steps before long generations, nobody starving.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from playground.model.anatomy import unwrap_peft_model
from playground.model.cpu_fused import speed_up_bf16_cpu
from playground.model.cpu_speed import native_bf16_cpu_cached
from playground.model.gguf import convert_gguf
from playground.model.quant import Quantization, quant_config
from playground.model.sources import (
    BUNDLED,
    DEFAULT_DATA_DIR,
    DtypeChoice,
    ModelLoadError,
    ResolvedSource,
    pick_device,
    pick_dtype,
    resolve_source,
)
from playground.model.turns import DeadlineLock, Urgency


class SeenThroughViews:
    """For a service that holds `self.store`: `seen_by(view)` is the same service with the model as one browser
    sees it (an adapters.session.AdapterView: that browser's adapter; None = the server's). The clone shares
    the caches, whose keys hold the store's revision (a view's includes its adapter), so two browsers'
    adapters never mix."""

    store: Any

    def seen_by(self, view: Any) -> Any:
        if view is None:
            return self
        clone = copy.copy(self)
        clone.store = view
        return clone


Progress = Callable[[str], None]


@dataclass(frozen=True)
class LoadSettings:
    """Everything that decides how a base model is loaded (passed whole, never as loose args)."""

    source: str = BUNDLED
    data_dir: Path = DEFAULT_DATA_DIR
    device: str | None = None  # None = auto: cuda > mps > cpu
    quantization: Quantization = "none"
    trust_remote_code: bool = False
    # None = the conservative precision training and scripts need (fp32 on every CPU); the app passes --dtype
    # ("auto": bf16 on a CPU with native bf16 too). See sources.pick_dtype.
    dtype: DtypeChoice | None = None


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
    cpu_packed: int = 0  # Linear layers whose bf16 weights are pre-packed for oneDNN (cpu_speed)
    cpu_fused: int = 0  # groups of those (q/k/v, gate/up) computed as one product (cpu_fused)

    @property
    def base_model(self) -> Any:
        """The transformers model under any PEFT wrapper."""
        return unwrap_peft_model(self.model)


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
    choice = settings.dtype
    if choice == "auto" and settings.quantization != "none":
        choice = None  # bitsandbytes computes in the dtype it was measured with (fp32 on a CPU)
    dtype = pick_dtype(device, choice)
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
        native = dtype == torch.bfloat16 and native_bf16_cpu_cached()
        if device.type == "cpu" and dtype != torch.float32 and not native:
            say(f"Note: this CPU has no native {str(dtype).removeprefix('torch.')}: expect it to be much slower "
                "than fp32.")
        common = {"trust_remote_code": settings.trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        quant = quant_config(settings.quantization, dtype)
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
    packed = fused = 0
    if device.type == "cpu" and dtype == torch.bfloat16 and quant is None:
        packed, fused = speed_up_bf16_cpu(model)  # the same numbers, checked, in less time
    return LoadedModel(
        model=model, tokenizer=tokenizer, name=source.name, source=settings.source, device=device,
        dtype=dtype, quantization=settings.quantization, fingerprint=fingerprint_model(model),
        checkpoint_dir=checkpoint, load_seconds=time.perf_counter() - started, from_cache=from_cache,
        cpu_packed=packed, cpu_fused=fused,
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
    _lock: DeadlineLock = field(default_factory=DeadlineLock)
    _switched_from: tuple[str | None] | None = None  # set while a session's own adapter runs (see below)

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
    def use(self, level: Urgency | None = None) -> Iterator[LoadedModel]:
        """Hold the model lock for the duration of a swap, a load, a training hand-off: anything that may
        change the model. `level` says how long the call may wait its turn (turns.Urgency; STEP when
        neither it nor the context says)."""
        with self._lock.hold(level):
            yield self.current

    @contextlib.contextmanager
    def reading(self, level: Urgency | None = None) -> Iterator[LoadedModel]:
        """`use()` for a call that only reads the model (a forward pass, a generation; a session's adapter
        switched on and back is a read): it may overtake a generation that gives way (turns.DeadlineLock)."""
        with self._lock.hold(level, reader=True):
            yield self.current

    def keeping(self, leave: Callable[[], None], back: Callable[[], None]) -> contextlib.AbstractContextManager:
        """Register how to leave / re-enter a state the holder set up (turns.DeadlineLock.keeping)."""
        return self._lock.keeping(leave, back)

    def more_urgent_waiting(self) -> bool:
        return self._lock.more_urgent_waiting()

    def yield_turn(self) -> bool:
        """Between two tokens: let a more urgent call run first (turns.DeadlineLock.yield_turn)."""
        return self._lock.yield_turn()

    def set_model(self, model: Any, active_adapter: str | None) -> None:
        """Replace the model object (e.g. wrapped by PEFT) and record the active adapter. Caller holds use()."""
        with self._lock:
            self.current.model = model
            self.current.active_adapter = active_adapter
            self.revision += 1

    @contextlib.contextmanager
    def switched_adapter(self, name: str | None) -> Iterator[LoadedModel]:
        """Hold the lock with `active_adapter` saying `name` for the block (a browser session's own adapter;
        the caller switches PEFT's layers), without a revision change; `server_adapter()` keeps answering
        the server's own meanwhile (lock-free readers: headers, the change stamp)."""
        with self._lock:
            lm = self.current
            previous = lm.active_adapter

            def leave() -> None:
                lm.active_adapter, self._switched_from = previous, None

            def back() -> None:
                lm.active_adapter, self._switched_from = name, (previous,)

            back()
            try:
                with self._lock.keeping(leave, back):  # a generation that gives way steps out of it meanwhile
                    yield lm
            finally:
                leave()

    def server_adapter(self) -> str | None:
        """The server's active adapter (None = base), also while a session's own adapter runs."""
        if self._switched_from is not None:
            return self._switched_from[0]
        return self._current.active_adapter if self._current is not None else None

    def header_markdown(self, adapter_label: str | None = None) -> str:
        """One line for the app header: model, device, dtype, and the adapter (`adapter_label` when the page
        shows a browser session's own choice; else the server's active adapter)."""
        if self._current is None:
            return "**No model loaded**"
        lm = self._current
        dtype = str(lm.dtype).removeprefix("torch.")
        quant = "" if lm.quantization == "none" else f" · {lm.quantization}"
        adapter = adapter_label or self.server_adapter() or "base (no adapter)"
        return (f"**Model:** `{lm.name}` · **device:** {lm.device.type} · **dtype:** {dtype}{quant}"
                f" · **adapter:** `{adapter}`")
