"""The model side of a room: the prompt's token ids, the model's top tokens after some ids, and decoding the
appended tokens, all through the app's DecodeService (its logits cache keyed on the model's revision)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from playground.classroom.codes import Candidate
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService
from playground.decode.tokens import token_text, visible


class DecodeModel:
    """NextTokenModel (classroom/rooms.py) on the loaded model, with its active adapter."""

    def __init__(self, decode: DecodeService) -> None:
        self.decode_service = decode

    def encode(self, text: str, chat: bool) -> tuple[int, ...]:
        return self.decode_service.encode(text, chat).ids

    def candidates(self, ids: tuple[int, ...], n: int) -> list[Candidate]:
        """The n likeliest next tokens, best first, by the model's own (raw) probabilities: the first is what
        greedy decoding appends, the room's "model's choice"."""
        dist = self.decode_service.distribution(ids, SamplingSettings())
        probs = dist.raw_probs
        top = torch.topk(probs, min(int(n), probs.numel()))
        tokenizer = self.decode_service.tokenizer()
        out = []
        for tid in top.indices.tolist():
            text = token_text(tokenizer, tid)
            out.append(Candidate(token_id=int(tid), text=text, label=visible(text), prob=float(probs[tid])))
        return out

    def signature(self) -> str:
        """Which tokenizer the ids belong to: an adapter switch keeps it, another model may not."""
        tok = self.decode_service.tokenizer()
        return f"{getattr(tok, 'name_or_path', '')}|{len(tok)}"

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_service.tokenizer().decode(list(ids), skip_special_tokens=False,
                                                      clean_up_tokenization_spaces=False)
