"""q/k/v and gate/up as one packed product on a bf16 CPU model (playground/model/cpu_fused.py): the same numbers
as plain `F.linear`, bit for bit, whoever calls the members in whatever order."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from test_cpu_decoding import CPU, needs_onednn_bf16
from torch import nn

from playground.decode.sampling import next_logits
from playground.decode.session import encode_prompt
from playground.model import cpu_fused, cpu_speed
from playground.model.store import LoadSettings, load_model


class Block(nn.Module):
    """The attention projections of one Llama block, in bf16."""

    def __init__(self, bias: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(64, n, bias=bias) for n in (64, 32, 32))
        self.to(torch.bfloat16)


def fused_block(bias: bool = False) -> Block:
    block = Block(bias)
    assert cpu_speed.pack_linear_weights(block) == 3
    assert cpu_fused.fuse_sibling_linears(block) == 1
    return block


def plain(m: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, m.weight, m.bias)


@needs_onednn_bf16
def test_fused_siblings_give_the_same_logits_bit_for_bit(tiny32_dir, tmp_path):
    fused = load_model(LoadSettings(source=str(tiny32_dir), data_dir=tmp_path, dtype="bfloat16"))
    assert fused.cpu_fused == 2 * 2  # two layers, each q/k/v and gate/up
    kinds = {type(m.__dict__.get("forward")).__name__ for m in fused.base_model.model.layers[0].self_attn.children()}
    assert kinds == {"SiblingForward", "PackedForward"}  # q/k/v fused, o_proj packed on its own
    reference = copy.deepcopy(fused.model)
    assert cpu_speed.unpack_linear_weights(reference) == fused.cpu_packed  # plain F.linear everywhere
    ids = encode_prompt(fused.tokenizer, "The rain in Spain falls mainly in the", False, 400).ids
    a, past_a = next_logits(fused.model, ids, CPU)
    b, past_b = next_logits(reference, ids, CPU)
    assert torch.equal(a, b)
    for token in (42, 7, 1999):  # cached steps: one row through each product
        a, past_a = next_logits(fused.model, (token,), CPU, past_a)
        b, past_b = next_logits(reference, (token,), CPU, past_b)
        assert torch.equal(a, b)


@needs_onednn_bf16
@pytest.mark.parametrize("bias", [False, True])
def test_each_member_gets_its_own_slice_in_any_order(bias):
    block = fused_block(bias)
    x, y = (torch.randn(2, 5, 64).to(torch.bfloat16) for _ in range(2))
    product = block.q_proj.forward.product
    with torch.inference_mode():
        assert torch.equal(block.v_proj(x), plain(block.v_proj, x))  # v first computes for the group…
        assert product.last[0] is x and [s is None for s in product.last[1]] == [False, False, True]
        assert torch.equal(block.q_proj(x), plain(block.q_proj, x))  # …q takes its slice…
        assert torch.equal(block.q_proj(x), plain(block.q_proj, x))  # …a second call computes again
        assert torch.equal(block.k_proj(y), plain(block.k_proj, y))  # another input: computed for y
        assert product.last[0] is y
        assert torch.equal(block.k_proj(x), plain(block.k_proj, x))  # x again: not y's slice


@needs_onednn_bf16
def test_a_changed_weight_is_packed_again():
    block = fused_block()
    x = torch.randn(1, 64).to(torch.bfloat16)
    with torch.no_grad():
        block.q_proj(x)
        block.k_proj.weight.mul_(2)  # in place: the group's stacked weight is stale now
        for m in (block.q_proj, block.k_proj, block.v_proj):
            assert torch.equal(m(x), plain(m, x))


@needs_onednn_bf16
def test_grad_and_other_dtypes_take_plain_f_linear():
    block = fused_block()
    x = torch.randn(3, 64).to(torch.bfloat16)
    out = block.k_proj(x)  # grad on: autograd works through the plain product
    out.float().sum().backward()
    assert block.k_proj.weight.grad is not None and block.q_proj.weight.grad is None
    with torch.no_grad(), pytest.raises(RuntimeError, match="dtype"):
        block.q_proj(x.float())


@needs_onednn_bf16
def test_a_copy_packs_on_its_own():
    block = fused_block()
    twin = copy.deepcopy(block)
    assert type(twin.q_proj.__dict__["forward"]) is cpu_speed.PackedForward
    assert twin.q_proj.forward.module is twin.q_proj
    with torch.no_grad():
        twin.q_proj.weight.zero_()
        x = torch.randn(1, 64).to(torch.bfloat16)
        assert torch.equal(twin.q_proj(x), torch.zeros(1, 64, dtype=torch.bfloat16))
        assert torch.equal(block.q_proj(x), plain(block.q_proj, x)) and block.q_proj(x).abs().sum() > 0


@needs_onednn_bf16
def test_groups_that_differ_or_do_not_match_stay_apart(monkeypatch):
    block = Block()
    block.v_proj = nn.Linear(32, 32, bias=False).to(torch.bfloat16)  # reads another width: not a sibling
    cpu_speed.pack_linear_weights(block)
    assert cpu_fused.fuse_sibling_linears(block) == 0
    block = Block()
    cpu_speed.pack_linear_weights(block)
    monkeypatch.setattr(cpu_fused, "_same_as_plain", lambda product: False)  # oneDNN rounding differently
    assert cpu_fused.fuse_sibling_linears(block) == 0
    assert type(block.q_proj.__dict__["forward"]) is cpu_speed.PackedForward
