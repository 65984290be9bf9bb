"""The logit lens and attention view in bf16 on a CUDA GPU, for every tiny family: the read-out check and the
attention check must hold up to bf16 rounding, and the kernel must be restored. Skipped without CUDA (CI is
CPU-only); run on a GPU machine with `python -m pytest tests/test_inside_cuda.py`."""

from __future__ import annotations

import pytest
import torch
from test_inside import FAMILIES, make_model

from playground.inside.attention import attention_weights, attn_implementation
from playground.inside.lens import logit_lens
from playground.inside.tokens import Prompt
from playground.model.store import LoadedModel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
VOCAB = 4096


class _Tokenizer:
    """Just enough of a tokenizer for labels (no files needed on the GPU machine)."""

    def decode(self, ids, **_kw) -> str:
        return f"t{int(ids[0])}"

    def convert_ids_to_tokens(self, tid):
        return f"t{int(tid)}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_lens_and_attention_on_cuda(family, dtype):
    model = make_model(family, VOCAB).to("cuda", dtype)
    lm = LoadedModel(model=model, tokenizer=_Tokenizer(), name=family, source=family, device=torch.device("cuda"),
                     dtype=dtype, quantization="none", fingerprint="x", checkpoint_dir=None)
    torch.manual_seed(0)
    ids = tuple(torch.randint(0, VOCAB, (100,)).tolist())
    prompt = Prompt(text="x", chat=False, fed_text="x", ids=ids, labels=tuple(f"t{i}" for i in ids))
    result = logit_lens(lm, prompt)
    with torch.no_grad():
        real = model(torch.tensor([ids], device="cuda")).logits[0, -1].float().softmax(-1)
    assert result.answer.token_id == int(real.argmax())
    assert result.answer.prob == pytest.approx(float(real.max()), abs=1e-2 if dtype != torch.float32 else 1e-5)
    before = attn_implementation(model)
    attn = attention_weights(lm, prompt)
    assert attn_implementation(model) == before and attn.weights.shape[-1] == 100
    assert float(attn.weights.triu(1).abs().max()) == 0.0
