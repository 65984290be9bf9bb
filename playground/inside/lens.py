"""The logit lens: what the model would predict if it stopped after each layer.

Gradio-free. One forward pass with `output_hidden_states=True` (the active adapter stays on); every layer's
residual stream is read out through the model's own final norm and LM head (`readout.Readout`). At the last
position the lens gives the top tokens per layer; over the last positions of the prompt it gives a
layers × positions grid of the top-1 token and its probability. The last layer equals the real logits
(checked on every run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from playground.inside.readout import Readout, check_matches, last_residual
from playground.inside.tokens import Prompt, token_label
from playground.model.anatomy import forward_accepts
from playground.model.store import LoadedModel

TOP_K = 5             # tokens per layer at the last position
GRID_POSITIONS = 24   # heatmap columns: the last N positions (each costs a vocab-sized matmul per layer)
CHUNK_ROWS = 256      # residual rows read out at once (bounds memory at CHUNK_ROWS × vocab floats)
MAX_LENS_TOKENS = 1024


@dataclass(frozen=True)
class LensToken:
    token: str
    token_id: int
    prob: float


@dataclass(frozen=True)
class LensLayer:
    index: int                       # 0 = embeddings, i = after block i
    name: str
    top: tuple[LensToken, ...]       # at the last position, best first


@dataclass(frozen=True)
class LensResult:
    prompt: Prompt
    layers: tuple[LensLayer, ...]
    positions: tuple[int, ...]                        # heatmap columns (prompt positions)
    grid: tuple[tuple[LensToken, ...], ...]           # layers × positions: top-1 token and probability
    max_abs_diff: float                               # last lens layer vs the model's real probabilities
    model_name: str = ""
    adapter: str | None = None

    @property
    def answer(self) -> LensToken:
        """The model's real next token (the last layer's top-1)."""
        return self.layers[-1].top[0]

    @property
    def first_layer(self) -> int:
        """The first layer at which the answer is the lens's top-1."""
        return next(layer.index for layer in self.layers if layer.top[0].token_id == self.answer.token_id)

    @property
    def settled_layer(self) -> int:
        """The layer from which on the answer stays the top-1."""
        index = self.layers[-1].index
        for layer in reversed(self.layers):
            if layer.top[0].token_id != self.answer.token_id:
                break
            index = layer.index
        return index

    @property
    def first_top_layer(self) -> int:
        """The first layer at which the answer is among the lens's top tokens."""
        return next(layer.index for layer in self.layers
                    if any(t.token_id == self.answer.token_id for t in layer.top))

    def summary(self) -> str:
        n, a = self.layers[-1].index, self.answer
        where = (f"it becomes the lens's top-1 only at **layer {n}**, the last" if self.first_layer == n else
                 f"it first becomes the lens's top-1 at **{_at(self.first_layer)}** (of {n} layers) and stays "
                 f"top-1 from {_at(self.settled_layer)} on")
        if self.first_top_layer < self.first_layer:
            where += f" (it first enters the top {len(self.layers[-1].top)} at {_at(self.first_top_layer)})"
        adapter = f" · adapter `{self.adapter}`" if self.adapter else ""
        shown = (f"the last {len(self.positions)} of {len(self.prompt.ids)} positions" if
                 len(self.positions) < len(self.prompt.ids) else f"all {len(self.positions)} positions")
        return (f"The model's next token is **“{a.token}”** ({100 * a.prob:.1f} %): {where}. "
                f"The grid shows {shown}{adapter}.")

    def table(self) -> list[list[Any]]:
        """Rows for a table: layer, then token and % for each of the top tokens (last layer first)."""
        return [[layer.name] + [f"{t.token}  {100 * t.prob:.1f}%" for t in layer.top]
                for layer in reversed(self.layers)]

    def as_api(self) -> dict[str, Any]:
        return {"tokens": list(self.prompt.labels), "ids": list(self.prompt.ids), "fed_text": self.prompt.fed_text,
                "layers": [{"layer": layer.index, "name": layer.name, "top": [asdict(t) for t in layer.top]}
                           for layer in self.layers],
                "answer": asdict(self.answer), "first_layer": self.first_layer, "settled_layer": self.settled_layer,
                "first_top_layer": self.first_top_layer,
                "positions": list(self.positions),
                "grid": [[asdict(t) for t in row] for row in self.grid],
                "max_abs_diff": self.max_abs_diff, "model": self.model_name, "adapter": self.adapter}


def layer_name(index: int) -> str:
    return "embeddings" if index == 0 else f"layer {index}"


def _at(index: int) -> str:
    """A row of the lens in a sentence: row 0 is the embeddings, as the table and the heatmaps name it."""
    return "the embeddings" if index == 0 else f"layer {index}"


def _grid(readout: Readout, stack: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-1 id and probability for every row of stack (layers × positions × hidden), chunked."""
    rows = stack.reshape(-1, stack.shape[-1])
    ids, probs = [], []
    for chunk in rows.split(CHUNK_ROWS):
        logits = readout.logits(chunk)
        best, idx = logits.max(-1)
        probs.append(torch.exp(best - torch.logsumexp(logits, -1)))
        ids.append(idx)
    shape = stack.shape[:2]
    return torch.cat(ids).reshape(shape).cpu(), torch.cat(probs).reshape(shape).cpu()


def logit_lens(lm: LoadedModel, prompt: Prompt, top_k: int = TOP_K, window: int = GRID_POSITIONS) -> LensResult:
    """Run the lens on the loaded model (caller holds the store's lock): one forward pass."""
    model, tok = lm.model, lm.tokenizer
    readout = Readout.find(model)
    ids = torch.tensor([prompt.ids], device=lm.device)
    length = ids.shape[1]
    cols = min(length, window)
    kwargs: dict[str, Any] = {"output_hidden_states": True, "use_cache": False}
    if forward_accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = cols  # the grid's last row is the model's own logits too
    with torch.inference_mode():
        with readout.capture():
            out = model(input_ids=ids, **kwargs)
        hidden = out.hidden_states
        raw_last = last_residual(readout, hidden, model)
        stack = torch.stack([h[0, length - cols:] for h in hidden[:-1]] + [raw_last[0, length - cols:]])
        last = readout.logits(stack[:, -1])                     # (layers+1) × vocab at the last position
        real_rows = out.logits[0, -cols:].float()               # the model's own logits at the grid's positions
        real = real_rows[-1]
        diff = check_matches(last[-1], real, model, stack.dtype)
        last[-1] = real  # the model's own distribution (equal in fp32; in bf16, free of re-rounding)
        probs = torch.softmax(last, -1)
        top_p, top_i = probs.topk(top_k, -1)
        grid_ids, grid_probs = _grid(readout, stack)
        # The grid's last row from the same real logits, so grid, table and summary agree (bf16 re-reading
        # through norm + head rounds differently and could show another top-1 there).
        best, best_ids = torch.softmax(real_rows, -1).max(-1)
        grid_ids[-1], grid_probs[-1] = best_ids.cpu(), best.cpu()
        # The grid's last column (the prompt's last position, every layer) is the table's own top-1: the same
        # vectors read out in a product of another shape can round to another near-tied token in bf16.
        grid_ids[:, -1], grid_probs[:, -1] = top_i[:, 0].cpu(), top_p[:, 0].cpu()
    top_p, top_i = top_p.cpu().tolist(), top_i.cpu().tolist()
    labels: dict[int, str] = {}

    def token(tid: int, p: float) -> LensToken:
        if tid not in labels:
            labels[tid] = token_label(tok, tid)
        return LensToken(labels[tid], int(tid), float(p))

    layers = tuple(LensLayer(i, layer_name(i), tuple(token(t, p) for t, p in zip(top_i[i], top_p[i])))
                   for i in range(len(top_i)))
    grid = tuple(tuple(token(t, p) for t, p in zip(row_i, row_p))
                 for row_i, row_p in zip(grid_ids.tolist(), grid_probs.tolist()))
    return LensResult(prompt=prompt, layers=layers, positions=tuple(range(length - cols, length)), grid=grid,
                      max_abs_diff=diff, model_name=lm.name, adapter=lm.active_adapter)
