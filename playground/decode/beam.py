"""Beam search made visible: the tree of expanded candidates, generate()'s ranked beams, and the greedy path.

Gradio-free. generate() does not expose the candidates it considers, so the tree is expanded here with
generate's scoring rule (cumulative log-probability, 2×B candidates per step, the best B unfinished ones
go on, finished ones scored sum/len^length_penalty). The FINAL ranked sequences and scores always come
from `model.generate(num_beams=B, do_sample=False)` itself; tests/test_beam_search.py checks the tree ranks
them the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from playground.decode.checks import check_float, check_int
from playground.decode.sampling import NEUTRAL_GENERATE_KWARGS, SamplingSettings, forward_kwargs, generate_kwargs
from playground.decode.tokens import token_label
from playground.model.store import LoadedModel

MAX_BEAMS, MAX_STEPS = 8, 20
LOGPROB_TOL = 1e-4  # generate()'s float32 beam scores vs a sum of log-softmaxes: closer than this is equal


def length_score(sum_logprob: float, tokens: int, length_penalty: float) -> float:
    """generate()'s beam ranking score: sum of log-probs / tokens ** length_penalty."""
    return float(sum_logprob) / (max(1, tokens) ** float(length_penalty))


@dataclass(frozen=True)
class BeamSettings:
    num_beams: int = 3
    steps: int = 5
    length_penalty: float = 1.0

    def __post_init__(self) -> None:  # loose values (slider floats) are checked and converted once, here
        object.__setattr__(self, "num_beams", check_int("num_beams", self.num_beams, 1, MAX_BEAMS))
        object.__setattr__(self, "steps", check_int("steps", self.steps, 1, MAX_STEPS))
        object.__setattr__(self, "length_penalty", check_float("length_penalty", self.length_penalty, -10.0, 10.0))

    @classmethod
    def from_values(cls, num_beams: Any, steps: Any, length_penalty: Any) -> "BeamSettings":
        return cls(num_beams, steps, length_penalty)


@dataclass
class BeamNode:
    """One expanded candidate: a token appended to a parent beam."""

    node_id: int
    step: int                 # 1-based: the n-th generated token
    parent: int               # node_id of the parent; -1 = the prompt
    token_id: int
    label: str
    step_logprob: float       # log P(token | beam so far)
    cum_logprob: float        # sum of step log-probs along the path
    status: str = "pruned"    # "kept" (goes on) | "finished" (a hypothesis) | "pruned"
    score: float | None = None  # length-penalised score when finished
    on_final: bool = False    # on one of generate()'s returned beams
    on_best: bool = False     # on generate()'s best beam
    on_greedy: bool = False   # on the greedy path

    def as_api(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("node_id", "step", "parent", "token_id", "label", "step_logprob",
                                               "cum_logprob", "status", "score", "on_final", "on_best",
                                               "on_greedy")}


@dataclass
class RankedSequence:
    token_ids: list[int]
    text: str
    score: float              # what generate() ranks beams by: sum_logprob / tokens ** length_penalty
    sum_logprob: float        # log of the sequence's total probability

    @property
    def probability(self) -> float:
        return math.exp(self.sum_logprob)

    def as_api(self) -> dict[str, Any]:
        return {"text": self.text, "token_ids": self.token_ids, "score": self.score,
                "sum_logprob": self.sum_logprob, "probability": self.probability}


@dataclass
class BeamResult:
    settings: BeamSettings
    nodes: list[BeamNode]
    final: list[RankedSequence]       # from generate(), best first
    tree_final: list[tuple[list[int], float]] = field(default_factory=list)  # the tree's own ranking
    greedy: RankedSequence | None = None  # score on the same scale as the beams' (length penalty applied)
    context: str = ""                 # the text the search continues (as fed to the model)

    @property
    def beam_vs_greedy(self) -> str | None:
        """Total probability of generate()'s best beam against greedy's: "better", "equal" or "worse".
        The same tokens, or log-probs closer than LOGPROB_TOL (float32 noise), are "equal"."""
        if not self.final or self.greedy is None:
            return None
        best, greedy = self.final[0], self.greedy
        if best.token_ids == greedy.token_ids or abs(best.sum_logprob - greedy.sum_logprob) <= LOGPROB_TOL:
            return "equal"
        return "better" if best.sum_logprob > greedy.sum_logprob else "worse"

    @property
    def beam_beats_greedy(self) -> bool:
        """Strictly more probable than greedy's sequence (equal is not a win)."""
        return self.beam_vs_greedy == "better"


def _eos_ids(lm: LoadedModel) -> list[int]:
    eos = lm.base_model.generation_config.eos_token_id
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    return [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])


def strip_after_eos(lm: LoadedModel, generated: list[int]) -> list[int]:
    """Cut a returned sequence after its first EOS (the rest is padding)."""
    eos = set(_eos_ids(lm))
    for i, tid in enumerate(generated):
        if tid in eos:
            return generated[: i + 1]
    return generated


@torch.inference_mode()
def expand_tree(lm: LoadedModel, prompt_ids: list[int], settings: BeamSettings) -> tuple[list[BeamNode], list[tuple[list[int], float]]]:
    """Expand beams step by step with generate()'s scoring rule, keeping every candidate considered."""
    model, eos = lm.model, set(_eos_ids(lm))
    beams = settings.num_beams
    keep = max(2, 1 + len(eos)) * beams   # generate() looks at this many candidates per step
    running: list[tuple[int, list[int], float]] = [(-1, [], 0.0)]  # (node id, generated ids, cum log-prob)
    nodes: list[BeamNode] = []
    finished: list[tuple[float, list[int]]] = []
    for step in range(1, settings.steps + 1):
        batch = torch.tensor([list(prompt_ids) + gen for _, gen, _ in running], dtype=torch.long, device=lm.device)
        logits = model(input_ids=batch, use_cache=False, **forward_kwargs(model)).logits[:, -1].float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        acc = logp + torch.tensor([c for _, _, c in running])[:, None]
        top = torch.topk(acc.reshape(-1), k=min(keep, acc.numel()))
        vocab = acc.shape[-1]
        candidates = []
        for rank, (value, flat) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            b, tid = divmod(flat, vocab)
            parent, gen, _ = running[b]
            node = BeamNode(node_id=len(nodes), step=step, parent=parent, token_id=tid,
                            label=token_label(lm.tokenizer, tid), step_logprob=float(logp[b, tid]),
                            cum_logprob=float(value))
            nodes.append(node)
            done = tid in eos or step == settings.steps
            candidates.append((rank, node, gen + [tid], done))
        # only the best `beams` candidates may become hypotheses; the best `beams` unfinished ones go on
        for rank, node, gen, done in candidates:
            if done and rank < beams:
                node.status = "finished"
                node.score = length_score(node.cum_logprob, len(gen), settings.length_penalty)
                finished.append((node.score, gen))
        going_on = [c for c in candidates if not c[3]][:beams]
        for _, node, _, _ in going_on:
            node.status = "kept"
        running = [(node.node_id, gen, node.cum_logprob) for _, node, gen, _ in going_on]
        if not running:
            break
    finished.sort(key=lambda item: -item[0])
    return nodes, [(gen, score) for score, gen in finished[:beams]]


def _sequence(lm: LoadedModel, generated: list[int], score: float, sum_logprob: float) -> RankedSequence:
    text = lm.tokenizer.decode(generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return RankedSequence(token_ids=generated, text=text, score=float(score), sum_logprob=float(sum_logprob))


@torch.inference_mode()
def generate_beams(lm: LoadedModel, prompt_ids: list[int], settings: BeamSettings) -> list[RankedSequence]:
    """generate()'s own beam search: all B returned beams, best first, with their scores."""
    if settings.num_beams == 1:  # generate() runs greedy search then, which reports no sequence score
        g = greedy_path(lm, prompt_ids, settings.steps)
        return [_sequence(lm, g.token_ids, length_score(g.sum_logprob, len(g.token_ids), settings.length_penalty),
                          g.sum_logprob)]
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    out = lm.model.generate(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
        **{**NEUTRAL_GENERATE_KWARGS, "num_beams": settings.num_beams, "num_return_sequences": settings.num_beams},
        do_sample=False, max_new_tokens=settings.steps, length_penalty=float(settings.length_penalty),
        early_stopping=False, repetition_penalty=1.0, temperature=None, top_k=None, top_p=None, min_p=None,
        output_scores=True, return_dict_in_generate=True, pad_token_id=lm.tokenizer.pad_token_id)
    result = []
    for seq, score in zip(out.sequences, out.sequences_scores.tolist()):
        gen = strip_after_eos(lm, seq[len(prompt_ids):].tolist())
        result.append(_sequence(lm, gen, score, score * (len(gen) ** settings.length_penalty)))
    return result


@torch.inference_mode()
def greedy_path(lm: LoadedModel, prompt_ids: list[int], steps: int) -> RankedSequence:
    """generate()'s greedy continuation with its total log-probability (score = that sum, no length penalty)."""
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            **generate_kwargs(SamplingSettings(temperature=0.0)), max_new_tokens=steps,
                            output_logits=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id)
    gen = out.sequences[0, len(prompt_ids):].tolist()
    total = sum(float(torch.log_softmax(step_logits[0].float(), -1)[tid]) for step_logits, tid in zip(out.logits, gen))
    return _sequence(lm, gen, total, total)


def beam_search(lm: LoadedModel, prompt_ids: list[int], settings: BeamSettings) -> BeamResult:
    """The tree, generate()'s ranked beams and the greedy path for one prompt. Caller holds store.use()."""
    nodes, tree_final = expand_tree(lm, prompt_ids, settings)
    final = generate_beams(lm, prompt_ids, settings)
    greedy = greedy_path(lm, prompt_ids, settings.steps)
    greedy.score = length_score(greedy.sum_logprob, len(greedy.token_ids), settings.length_penalty)  # beams' scale
    _mark_paths(nodes, final, greedy)
    context = lm.tokenizer.decode(list(prompt_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return BeamResult(settings=settings, nodes=nodes, final=final, tree_final=tree_final, greedy=greedy,
                      context=context)


def _mark_paths(nodes: list[BeamNode], final: list[RankedSequence], greedy: RankedSequence) -> None:
    """Flag the tree nodes that lie on generate()'s beams and on the greedy path."""
    by_path: dict[tuple[int, ...], BeamNode] = {}
    paths: dict[int, tuple[int, ...]] = {-1: ()}
    for node in nodes:
        paths[node.node_id] = paths[node.parent] + (node.token_id,)
        by_path.setdefault(paths[node.node_id], node)
    for i, seq in enumerate(final):
        for n in range(1, len(seq.token_ids) + 1):
            node = by_path.get(tuple(seq.token_ids[:n]))
            if node is not None:
                node.on_final = True
                node.on_best = node.on_best or i == 0
    for n in range(1, len(greedy.token_ids) + 1):
        node = by_path.get(tuple(greedy.token_ids[:n]))
        if node is not None:
            node.on_greedy = True
