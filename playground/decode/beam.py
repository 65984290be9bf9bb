"""Beam search made visible: the tree of expanded candidates, generate()'s ranked beams, and the greedy path.

Gradio-free. generate() does not expose the candidates it considers, so the tree is expanded here with
generate's scoring rule (cumulative log-probability, 2×B candidates per step, the best B unfinished ones
go on, finished ones scored sum/len^length_penalty). The FINAL ranked sequences and scores always come
from `model.generate(num_beams=B, do_sample=False)` itself; tests/test_beam_search.py checks the tree ranks
them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from playground.decode.sampling import (
    NEUTRAL_GENERATE_KWARGS,
    SamplingSettings,
    check_float,
    check_int,
    forward_kwargs,
)
from playground.decode.sampling import generate_kwargs
from playground.model.store import LoadedModel
from playground.decode.tokens import token_label

MAX_BEAMS, MAX_STEPS = 8, 20


@dataclass(frozen=True)
class BeamSettings:
    num_beams: int = 3
    steps: int = 5
    length_penalty: float = 1.0

    def __post_init__(self) -> None:
        check_int("num_beams", self.num_beams, 1, MAX_BEAMS)
        check_int("steps", self.steps, 1, MAX_STEPS)
        check_float("length_penalty", self.length_penalty, -10.0, 10.0)

    @classmethod
    def from_values(cls, num_beams: Any, steps: Any, length_penalty: Any) -> "BeamSettings":
        return cls(num_beams=check_int("num_beams", num_beams, 1, MAX_BEAMS),
                   steps=check_int("steps", steps, 1, MAX_STEPS),
                   length_penalty=check_float("length_penalty", length_penalty, -10.0, 10.0))


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
    score: float              # generate()'s sequences_scores (greedy: the sum of log-probs)
    sum_logprob: float

    @property
    def probability(self) -> float:
        return float(torch.tensor(self.sum_logprob).exp())

    def as_api(self) -> dict[str, Any]:
        return {"text": self.text, "token_ids": self.token_ids, "score": self.score,
                "sum_logprob": self.sum_logprob, "probability": self.probability}


@dataclass
class BeamResult:
    settings: BeamSettings
    nodes: list[BeamNode]
    final: list[RankedSequence]       # from generate(), best first
    tree_final: list[tuple[list[int], float]] = field(default_factory=list)  # the tree's own ranking
    greedy: RankedSequence | None = None

    @property
    def beam_beats_greedy(self) -> bool:
        return bool(self.final and self.greedy and self.final[0].sum_logprob > self.greedy.sum_logprob + 1e-9)

    def summary(self) -> str:
        if not self.final or self.greedy is None:
            return ""
        best, greedy = self.final[0], self.greedy
        verdict = ("beam search found a sequence **more probable** than greedy's" if self.beam_beats_greedy
                   else "greedy's sequence is at least as probable (beam search found nothing better)")
        return (f"Best beam: total probability **{best.probability:.4g}** (log-prob {best.sum_logprob:.3f}); "
                f"greedy: **{greedy.probability:.4g}** (log-prob {greedy.sum_logprob:.3f}): {verdict}.")


def _eos_ids(lm: LoadedModel) -> list[int]:
    eos = lm.base_model.generation_config.eos_token_id
    if eos is None:
        eos = lm.tokenizer.eos_token_id
    return [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])


def _strip(lm: LoadedModel, generated: list[int]) -> list[int]:
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
                node.score = node.cum_logprob / (len(gen) ** settings.length_penalty)
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
        return [_sequence(lm, g.token_ids, g.sum_logprob / (len(g.token_ids) ** settings.length_penalty),
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
        gen = _strip(lm, seq[len(prompt_ids):].tolist())
        result.append(_sequence(lm, gen, score, score * (len(gen) ** settings.length_penalty)))
    return result


@torch.inference_mode()
def greedy_path(lm: LoadedModel, prompt_ids: list[int], steps: int) -> RankedSequence:
    """generate()'s greedy continuation with its total log-probability."""
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
    _mark_paths(nodes, final, greedy)
    return BeamResult(settings=settings, nodes=nodes, final=final, tree_final=tree_final, greedy=greedy)


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


# ---------------------------------------------------------------- greedy vs beam vs sampled

@dataclass
class StrategyResult:
    """One strategy's continuation of the same prompt."""

    name: str
    detail: str
    text: str
    token_ids: list[int]
    sum_logprob: float        # under the model itself (temperature 1), comparable across strategies

    @property
    def mean_token_prob(self) -> float:
        return float(torch.tensor(self.sum_logprob / max(1, len(self.token_ids))).exp())


@torch.inference_mode()
def continuation_logprob(lm: LoadedModel, prompt_ids: list[int], generated: list[int]) -> float:
    """log P(generated | prompt) under the model, by one teacher-forced forward pass."""
    if not generated:
        return 0.0
    ids = torch.tensor([list(prompt_ids) + list(generated)], dtype=torch.long, device=lm.device)
    logits = lm.model(input_ids=ids, use_cache=False).logits[0, len(prompt_ids) - 1:-1].float()
    logp = torch.log_softmax(logits, -1)
    return float(logp.gather(1, torch.tensor(generated, device=logp.device)[:, None]).sum())


@torch.inference_mode()
def compare_strategies(lm: LoadedModel, prompt_ids: list[int], settings: SamplingSettings, num_beams: int,
                       max_new_tokens: int, seed: int) -> list[StrategyResult]:
    """Greedy, beam search and sampling (fixed seed) on the same prompt, all through generate()."""
    check_int("max_new_tokens", max_new_tokens, 1, 200)
    check_int("num_beams", num_beams, 1, MAX_BEAMS)
    check_int("seed", seed, 0, 2**32 - 1)
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)
    common = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=max_new_tokens,
                  pad_token_id=lm.tokenizer.pad_token_id)
    runs = [("Greedy", "argmax every step", generate_kwargs(SamplingSettings(temperature=0.0))),
            ("Beam search", f"{num_beams} beams", {**generate_kwargs(SamplingSettings(temperature=0.0)),
                                                  "num_beams": num_beams, "early_stopping": False}),
            ("Sampled", f"T={settings.temperature:g}, top-k={settings.top_k}, top-p={settings.top_p:g}, "
                        f"min-p={settings.min_p:g}, seed {seed}", generate_kwargs(settings))]
    results = []
    for name, detail, kwargs in runs:
        torch.manual_seed(int(seed))
        out = lm.model.generate(**common, **kwargs)
        gen = _strip(lm, out[0, len(prompt_ids):].tolist())
        text = lm.tokenizer.decode(gen, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        results.append(StrategyResult(name, detail, text, gen, continuation_logprob(lm, prompt_ids, gen)))
    return results
