"""Faster inference on a CPU. The app still shows exactly what generate() samples from, in the dtype it runs:
every change below is a property of the loaded model, so generate() and the app's own passes share it.

A decode step of a small model is bound by reading the weights. What pays on a CPU (bench/decode.py):

* **bf16 weights** where the CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16 on x86, the BF16
  extension on Arm): half the bytes per step. Without native support bf16 is emulated and ~10x slower, so
  `native_bf16_cpu()` checks the CPU's own flags, not only that oneDNN was built with bf16.
* **pre-packed weights**: a plain bf16 `F.linear` has oneDNN re-lay the weight out on every call; packing
  each `nn.Linear` weight once (`mkldnn._reorder_linear_weight`) and calling the packed product
  (`mkldnn._linear_pointwise`) computes the same numbers ~1.5x faster. `pack_linear_weights` checks that
  each packed product equals `F.linear` bit for bit before it keeps it; anything unusual (grad on, another
  dtype or device, a changed weight) takes the plain `F.linear` path.
* **sibling products fused** (cpu_fused.py): q/k/v and gate/up read the same input, so each group is one
  packed product (fewer, larger oneDNN calls; the same numbers, checked bit for bit).
* **attention in fp32**: torch's bf16 CPU attention kernel takes ~7x the fp32 one for a one-token query
  (137 vs 18 us a layer here), so `use_fp32_attention` runs transformers' own SDPA attention on the bf16
  query/keys/values upcast to fp32 (exact) and rounds the result back to bf16: faster and no less accurate.
  It is a registered attention implementation, so generate() and every forward pass use the same one.
* **one torch thread on a 2-CPU machine** (`app_threads`): the web server, the streaming consumer and the
  browser need the other CPU; two OpenMP threads there stall at every op's barrier whenever anything else
  runs (measured here: a bf16 step 21 ms with 1 thread, 26 ms with 2, and 300+ ms with 2 under heavy load).

The modules stay `nn.Linear` (PEFT wraps them as usual, printing and counting are unchanged); only their
`forward` is replaced by a `PackedForward` instance attribute. Gradio-free.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from playground.model.anatomy import unwrap_peft_model

X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as the kernel reports them (x86 'flags', Arm 'Features'); empty elsewhere."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def _onednn_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def native_bf16_cpu(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """True when this CPU computes bf16 in hardware and torch's oneDNN uses it. oneDNN alone says yes on
    any AVX-512 CPU (where bf16 is emulated, ~10x slower), so the CPU's own flags must name bf16 too."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        native = any(f in flags for f in X86_BF16_FLAGS)
    elif machine in ("aarch64", "arm64"):
        native = "bf16" in flags
    else:
        native = False
    return native and _onednn_bf16()


@functools.cache
def native_bf16_cpu_cached() -> bool:
    """`native_bf16_cpu()` of this machine, read once per process."""
    return native_bf16_cpu()


def app_threads(cpu_count: int | None) -> int | None:
    """torch's thread count for the app: 1 on a machine with at most 2 CPUs, else None (torch's own choice)."""
    return 1 if cpu_count is not None and cpu_count <= 2 else None


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors keep no version counter
        return -1


class PackedForward:
    """`nn.Linear.forward` through oneDNN with the bf16 weight packed once (re-packed if the weight changes)."""

    def __init__(self, module: nn.Linear) -> None:
        self.module = module
        self.packed: torch.Tensor | None = None
        self.key: tuple[int, int] | None = None

    def _usable(self, x: torch.Tensor, w: torch.Tensor) -> bool:
        grad = torch.is_grad_enabled() and (w.requires_grad or x.requires_grad)
        return not grad and w.dtype == torch.bfloat16 and x.dtype == w.dtype and x.device.type == "cpu" \
            and w.device.type == "cpu"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.module
        w = m.weight
        if not self._usable(x, w):
            return F.linear(x, w, m.bias)
        if self.key != (w.data_ptr(), _version(w)):
            self.pack(w)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, m.bias, "none", [], "")

    def pack(self, w: torch.Tensor) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w.detach(), 1)
        self.key = (w.data_ptr(), _version(w))

    def __deepcopy__(self, memo: dict[int, Any]) -> "PackedForward":
        # A deep copy of the module (memo holds it by then) gets its own forward; it packs on first use.
        return PackedForward(memo.get(id(self.module), self.module))


def _same_as_plain(layers: list[nn.Linear], forwards: list[PackedForward]) -> bool:
    """The packed product equals F.linear bit for bit, for one row (a decode step) and several (a prompt).
    oneDNN picks its kernel by shape, so one layer of each weight shape speaks for the others."""
    gen = torch.Generator().manual_seed(0)  # the probe inputs leave the global RNG alone
    seen: set[tuple[tuple[int, ...], bool]] = set()
    for m, forward in zip(layers, forwards):
        kind = (tuple(m.weight.shape), m.bias is not None)
        if kind in seen:
            continue
        seen.add(kind)
        for rows in (1, 3):
            x = torch.randn(rows, m.in_features, generator=gen).to(m.weight.dtype)
            if not torch.equal(forward(x), F.linear(x, m.weight, m.bias)):
                return False
    return True


def packable_linears(model: Any) -> list[nn.Linear]:
    """The plain bf16 `nn.Linear` layers on the CPU (not bitsandbytes' subclasses, not PEFT's adapters)."""
    return [m for m in model.modules() if type(m) is nn.Linear and m.weight.dtype == torch.bfloat16
            and m.weight.device.type == "cpu"]


def pack_linear_weights(model: Any) -> int:
    """Give every packable Linear a packed forward, each checked to equal `F.linear` bit for bit; if any
    differs (or oneDNN lacks the ops) nothing stays packed. Returns how many layers are packed."""
    layers = packable_linears(model)
    if not layers or not _onednn_bf16():
        return 0
    try:
        with torch.no_grad():
            forwards = [PackedForward(m) for m in layers]
            for m, forward in zip(layers, forwards):
                forward.pack(m.weight)
            if not _same_as_plain(layers, forwards):
                return 0
    except (AttributeError, RuntimeError):  # this torch has no such oneDNN ops
        return 0
    for m, forward in zip(layers, forwards):
        m.forward = forward
    return len(layers)


def unpack_linear_weights(model: Any) -> int:
    """Undo `pack_linear_weights` (the plain `F.linear` again). Returns how many layers were unpacked."""
    count = 0
    for m in model.modules():
        if isinstance(m.__dict__.get("forward"), PackedForward):
            del m.forward
            count += 1
    return count


FP32_ATTENTION = "playground_sdpa_fp32"  # registered with transformers' attention and mask interfaces


def _sdpa_in_fp32(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, **kwargs: Any) -> tuple[torch.Tensor, Any]:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if query.dtype != torch.bfloat16 or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(query.dtype), weights


def use_fp32_attention(model: Any) -> bool:
    """Switch a bf16 CPU model from "sdpa" to SDPA computed in fp32 (see the module docstring). Models on
    another attention implementation, or a transformers without these interfaces, are left as they are."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        base = unwrap_peft_model(model)
        if getattr(base.config, "_attn_implementation", None) != "sdpa":
            return False
        AttentionInterface.register(FP32_ATTENTION, _sdpa_in_fp32)  # idempotent: the same key and function
        AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)
        base.set_attn_implementation(FP32_ATTENTION)
    except (ImportError, AttributeError, KeyError, RuntimeError, TypeError, ValueError):  # keeps plain "sdpa"
        return False
    return base.config._attn_implementation == FP32_ATTENTION


def packed_layers(model: Any) -> int:
    return sum(isinstance(m.__dict__.get("forward"), PackedForward) for m in model.modules())
