"""Sibling projections as one packed product on a bf16 CPU model: q/k/v of an attention block, gate/up of an MLP.

They read the same input, so one oneDNN product over their weights stacked row-wise does the work of three (or
two) calls: a decode step of a small model spends much of its time on the per-call cost of small products, and
this takes ~7% off a step of the bundled model (bench/decode.py). Each output column is the same dot product of
the same row, and `fuse_sibling_linears` checks bit for bit that every member's slice equals `F.linear` before
it keeps a group, so the model's numbers do not change.

How: the first member called with an input computes the product for the whole group and hands each member its
slice once; a member called with another input (or a second time) computes again. The group keeps a reference to
the input it last saw, so the identity check cannot match a new tensor at a reused address. Anything off the
packed path (grad on, another dtype) takes plain `F.linear` exactly as `PackedForward` does. Gradio-free.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from playground.model.cpu_speed import PackedForward, _version, pack_linear_weights, use_fp32_attention

SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # read the same input in Llama-style blocks


class SiblingProduct:
    """One packed weight for Linears that read the same input, re-packed whenever a member's weight changes."""

    def __init__(self, modules: list[nn.Linear]) -> None:
        self.modules = modules
        self.sizes = [m.out_features for m in modules]
        self.packed: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.key: tuple | None = None
        self.last: tuple[torch.Tensor | None, list[torch.Tensor | None]] = (None, [])  # (input, unclaimed slices)

    def _key(self) -> tuple:
        return tuple((t.data_ptr(), _version(t)) for m in self.modules for t in (m.weight, m.bias) if t is not None)

    def pack(self) -> None:
        self.packed = torch.ops.mkldnn._reorder_linear_weight(torch.cat([m.weight.detach() for m in self.modules]), 1)
        biases = [m.bias for m in self.modules]
        self.bias = torch.cat([b.detach() for b in biases]) if biases[0] is not None else None
        self.key = self._key()

    def claim(self, index: int, x: torch.Tensor) -> torch.Tensor | None:
        """This member's slice if a sibling computed the product for this very input, else None."""
        x_seen, unclaimed = self.last
        if x_seen is not x or unclaimed[index] is None:
            return None
        out, unclaimed[index] = unclaimed[index], None
        return out

    def compute(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self.key != self._key():
            self.pack()
        out = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        unclaimed: list[torch.Tensor | None] = list(out.split(self.sizes, dim=-1))
        mine, unclaimed[index] = unclaimed[index], None
        self.last = (x, unclaimed)  # one assignment: a racing caller never pairs an input with another's slices
        return mine


class SiblingForward(PackedForward):
    """A member's `forward`: its slice of the group's product (a `PackedForward`, so unpacking removes it too)."""

    def __init__(self, module: nn.Linear, product: SiblingProduct, index: int) -> None:
        super().__init__(module)
        self.product, self.index = product, index

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.product.claim(self.index, x)  # first: the cheap path, taken by all but one member per input
        if out is not None:
            return out
        m = self.module
        if not self._usable(x, m.weight):
            return F.linear(x, m.weight, m.bias)
        return self.product.compute(self.index, x)


def _groups(model: Any) -> list[list[nn.Linear]]:
    """Sibling Linears (all packed, same input width, all with or all without bias), per block."""
    found = []
    for parent in model.modules():
        for names in SIBLINGS:
            members = [getattr(parent, n, None) for n in names]
            if all(isinstance(m, nn.Linear) and type(m.__dict__.get("forward")) is PackedForward for m in members) \
                    and len({(m.in_features, m.bias is None, m.weight.dtype) for m in members}) == 1:
                found.append(members)
    return found


def _same_as_plain(product: SiblingProduct) -> bool:
    gen = torch.Generator().manual_seed(0)  # the probe inputs leave the global RNG alone
    width, dtype = product.modules[0].in_features, product.modules[0].weight.dtype
    for rows in (1, 3):  # a decode step and a prompt
        x = torch.randn(rows, width, generator=gen).to(dtype)
        for i, m in enumerate(product.modules):
            got = product.compute(i, x)
            if not torch.equal(got, F.linear(x, m.weight, m.bias)):
                return False
    return True


def fuse_sibling_linears(model: Any) -> int:
    """Give the packed sibling projections one product per group, each group checked bit for bit against
    `F.linear` (a group that differs keeps its members' own packed products). Returns how many groups."""
    fused = 0
    with torch.no_grad():
        for members in _groups(model):
            product = SiblingProduct(members)
            try:
                product.pack()
                same = _same_as_plain(product)
            except (AttributeError, RuntimeError):  # this torch has no such oneDNN ops
                return fused
            if same:
                for i, m in enumerate(members):
                    m.forward = SiblingForward(m, product, i)
                fused += 1
    return fused


def speed_up_bf16_cpu(model: Any) -> tuple[int, int]:
    """All of it for a bf16 model on a CPU: packed weights, fused siblings, attention in fp32 (cpu_speed's
    docstring says why each pays). Returns (packed Linear layers, fused groups)."""
    packed = pack_linear_weights(model)
    fused = fuse_sibling_linears(model)
    use_fp32_attention(model)
    return packed, fused


def packed_bytes(model: Any) -> int:
    """Bytes of the oneDNN pre-packed weight copies: kept beside the bf16 weights (which training, adapters and
    `get_memory_footprint` still see), so they are memory the footprint alone leaves out."""
    seen: set[int] = set()
    total = 0
    for module in model.modules():
        forward = module.__dict__.get("forward")
        tensors = [getattr(forward, "packed", None), getattr(getattr(forward, "product", None), "packed", None)]
        for t in tensors:
            if isinstance(t, torch.Tensor) and id(t) not in seen:  # a group's product is shared by its members
                seen.add(id(t))
                total += t.numel() * t.element_size()
    return total
