"""Beam search made visible: the tree of expanded candidates, generate()'s ranked beams, and the greedy path.

Gradio-free. generate() does not return the candidates it considers, so a last LogitsProcessor records what its
beam search saw at each step (the running beams and their next-token log-probabilities, computed by generate()
itself), and the tree is expanded from those with its rule (2×B candidates a step by cumulative log-probability;
the best B unfinished go on, finished ones scored sum/len^length_penalty). The FINAL ranked sequences and scores
always come from the same `model.generate(num_beams=B, do_sample=False)` call (one search serves both views);
tests/test_beam_search.py checks the tree ranks them the same way and that its kept beams are the ones generate() ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from collections.abc import Callable
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from playground.decode.checks import check_float, check_int
from playground.decode.sampling import NEUTRAL_GENERATE_KWARGS, SamplingSettings, generate_kwargs, token_logprobs
from playground.decode.tokens import token_label
from playground.decode.words import eos_ids
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


def strip_after_eos(lm: LoadedModel, generated: list[int]) -> list[int]:
    """Cut a returned sequence after its first EOS (the rest is padding)."""
    eos = _eos(lm)
    for i, tid in enumerate(generated):
        if tid in eos:
            return generated[: i + 1]
    return generated


class _SearchRecorder(LogitsProcessor):
    """Last processor of generate()'s search: keeps what it saw at each step, the running sequences (one row a
    beam) and their next-token scores, and changes nothing."""

    def __init__(self) -> None:
        self.steps: list[tuple[list[list[int]], torch.Tensor]] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append((input_ids.tolist(), scores.detach().float().cpu()))
        return scores


def _eos(lm: LoadedModel) -> set[int]:
    """The ids that end a beam: the model's generation_config, else the tokenizer's (passed to generate() too, so
    the tree and the search stop on the same tokens)."""
    return eos_ids(lm.tokenizer, lm.base_model.generation_config)


def _search_kwargs(lm: LoadedModel, settings: BeamSettings) -> dict[str, Any]:
    """generate()'s beam search as this tab runs it: no sampling, no processors, `steps` new tokens at most."""
    return dict(**{**NEUTRAL_GENERATE_KWARGS, "num_beams": settings.num_beams}, do_sample=False,
                max_new_tokens=settings.steps, length_penalty=float(settings.length_penalty), early_stopping=False,
                repetition_penalty=1.0, temperature=None, top_k=None, top_p=None, min_p=None,
                pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=sorted(_eos(lm)) or None)


@torch.inference_mode()
def search(lm: LoadedModel, prompt_ids: list[int], settings: BeamSettings) -> tuple["Tree", list[RankedSequence]]:
    """One call of generate()'s own beam search gives both views: the tree of what it saw (its running beams and
    their next-token log-probabilities, recorded step by step inside it, then expanded with its rule by
    tree_from_steps) and all B beams it returns, best first, with its scores."""
    recorder = _SearchRecorder()
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            **{**_search_kwargs(lm, settings), "num_return_sequences": settings.num_beams},
                            output_scores=settings.num_beams > 1, return_dict_in_generate=True,  # beams' scores
                            logits_processor=LogitsProcessorList([recorder]))
    tree = tree_from_steps(recorder.steps, len(prompt_ids), settings, _eos(lm), lambda t: token_label(lm.tokenizer, t))
    if settings.num_beams == 1:  # generate() ran greedy search, which reports no sequence score: sum the tree's
        gen = strip_after_eos(lm, out.sequences[0, len(prompt_ids):].tolist())
        total = float(token_logprobs(torch.cat([scores for _, scores in recorder.steps[:len(gen)]]), gen).sum())
        return tree, [_sequence(lm, gen, length_score(total, len(gen), settings.length_penalty), total)]
    final = []
    for seq, score in zip(out.sequences, out.sequences_scores.tolist()):
        gen = strip_after_eos(lm, seq[len(prompt_ids):].tolist())
        final.append(_sequence(lm, gen, score, score * (len(gen) ** settings.length_penalty)))
    return tree, final


Tree = tuple[list[BeamNode], list[tuple[list[int], float]]]  # every candidate; the best hypotheses, best first


def tree_from_steps(steps: list[tuple[list[list[int]], torch.Tensor]], prompt_len: int, settings: BeamSettings,
                    eos: set[int], label: Callable[[int], str]) -> Tree:
    """Every candidate generate()'s search considered, from what it saw at each step (the running sequences and
    their next-token scores): each step, its 2×B best continuations by cumulative log-probability; of them the
    best B that end (EOS, or the last step) become hypotheses scored sum/len^length_penalty. A candidate is
    "kept" when generate() ran it at the next step: the rows it recorded say which beams went on."""
    nodes: list[BeamNode] = []
    finished: list[tuple[float, list[int]]] = []
    previous: dict[tuple[int, ...], BeamNode] = {}  # the last step's candidates by their generated ids
    paths: dict[int, list[int]] = {-1: []}
    beams = settings.num_beams
    keep = max(2, 1 + len(eos)) * beams   # generate() looks at this many candidates per step
    for step, (rows, scores) in enumerate(steps[:settings.steps], start=1):
        # beam search hands its processors log-probabilities (used as they are, so near-ties rank as in
        # generate()); greedy search hands them logits
        logp = torch.log_softmax(scores, dim=-1) if beams == 1 else scores
        running: list[tuple[int, int, float]] = []  # (row, parent node id, cum log-prob)
        for b, row in enumerate(rows):
            gen = tuple(row[prompt_len:])
            if step == 1:  # every row is the prompt; the first is the real beam (the others start at −1e9)
                running = [(b, -1, 0.0)]
                break
            node = previous.get(gen)
            if node is not None and node.status != "kept":
                node.status = "kept"
                running.append((b, node.node_id, node.cum_logprob))
        if not running:  # nothing of what generate() ran is a candidate here (cannot happen with its own rule)
            break
        acc = torch.stack([logp[b] + cum for b, _, cum in running])
        top = torch.topk(acc.reshape(-1), k=min(keep, acc.numel()))
        vocab, previous = acc.shape[-1], {}
        for rank, (value, flat) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
            r, tid = divmod(flat, vocab)
            b, parent, _ = running[r]
            node = BeamNode(node_id=len(nodes), step=step, parent=parent, token_id=tid, label=label(tid),
                            step_logprob=float(logp[b, tid]), cum_logprob=float(value))
            nodes.append(node)
            paths[node.node_id] = paths[parent] + [tid]
            if (tid in eos or step == settings.steps) and rank < beams:  # only the best B may become hypotheses
                node.status = "finished"
                node.score = length_score(node.cum_logprob, len(paths[node.node_id]), settings.length_penalty)
                finished.append((node.score, paths[node.node_id]))
            else:
                previous[tuple(paths[node.node_id])] = node
    finished.sort(key=lambda item: -item[0])
    return nodes, [(gen, score) for score, gen in finished[:beams]]


def _sequence(lm: LoadedModel, generated: list[int], score: float, sum_logprob: float) -> RankedSequence:
    text = lm.tokenizer.decode(generated, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return RankedSequence(token_ids=generated, text=text, score=float(score), sum_logprob=float(sum_logprob))


@torch.inference_mode()
def greedy_path(lm: LoadedModel, prompt_ids: list[int], steps: int) -> RankedSequence:
    """generate()'s greedy continuation with its total log-probability (score = that sum, no length penalty)."""
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    out = lm.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                            **generate_kwargs(SamplingSettings(temperature=0.0)), max_new_tokens=steps,
                            output_logits=True, return_dict_in_generate=True,
                            pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=sorted(_eos(lm)) or None)
    gen = out.sequences[0, len(prompt_ids):].tolist()
    # each token's log-probability under the model's raw logits (not compute_transition_scores: it reshapes by
    # config.vocab_size, which a model whose output layer is padded wider does not match)
    total = float(token_logprobs(torch.cat(out.logits[:len(gen)]), gen).sum())
    return _sequence(lm, gen, total, total)


def beam_search(lm: LoadedModel, prompt_ids: list[int], settings: BeamSettings) -> BeamResult:
    """The tree, generate()'s ranked beams and the greedy path for one prompt. Caller holds store.use()."""
    (nodes, tree_final), final = search(lm, prompt_ids, settings)
    # a beam of width one is greedy search: its one beam is the greedy path, with no third generate()
    greedy = replace(final[0]) if settings.num_beams == 1 else greedy_path(lm, prompt_ids, settings.steps)
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
