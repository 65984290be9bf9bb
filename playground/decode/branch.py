"""Branch from anywhere: cut the step-through text before a token and go on with another one, or continue
from any node of the beam-search tree (Gradio-free).

The state keeps its session id, so the DecodeService reuses the session's KV cache up to the branch point
(it crops the cache to the common prefix and feeds only the new tokens; `svc.tokens_fed` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from playground.decode.beam import BeamResult
from playground.decode.checks import check_int
from playground.decode.sampling import SamplingSettings
from playground.decode.session import DecodeService, StepState, chosen_from_distribution
from playground.decode.tokens import token_label

NO_TEXT = "Nothing to branch from: append some tokens first."


def cut(state: StepState, step: Any) -> StepState:
    """The text up to (not including) chosen token #step (0 = the first token after the prompt)."""
    if not state.chosen:
        raise ValueError(NO_TEXT)
    i = check_int("branch step", step, 0, len(state.chosen) - 1)
    return replace(state, chosen=state.chosen[:i])


def append(svc: DecodeService, state: StepState, settings: SamplingSettings, token_id: int,
           how: str = "picked") -> StepState:
    """Append one token, recorded with its probability under `settings` (one cached step)."""
    dist = svc.distribution(state.ids, settings, state.session_id)
    tid = check_int("token id", token_id, 0, dist.final_probs.numel() - 1)
    return state.append(chosen_from_distribution(dist, svc.tokenizer(), tid, how))


def alternative_id(svc: DecodeService, state: StepState, settings: SamplingSettings, step: Any, alt: Any) -> int:
    """The token id of alternative #alt shown for chosen token #step. Tokens from "Generate N" record only
    labels, so those are found again among the best-ranked tokens at that step."""
    if not state.chosen:
        raise ValueError(NO_TEXT)
    i = check_int("branch step", step, 0, len(state.chosen) - 1)
    token = state.chosen[i]
    j = check_int("alternative", alt, 0, max(0, len(token.alternatives) - 1))
    if token.alternative_ids:
        return int(token.alternative_ids[j])
    label = token.alternatives[j][0]
    before = replace(state, chosen=state.chosen[:i])
    dist = svc.distribution(before.ids, settings, state.session_id)
    tokenizer = svc.tokenizer()
    for tid in dist.order.tolist():
        if token_label(tokenizer, tid) == label:
            return int(tid)
    raise ValueError(f"The alternative “{label}” is not among the best {dist.order.numel()} tokens there any more.")


def branch(svc: DecodeService, state: StepState | None, settings: SamplingSettings, step: Any,
           alt: Any = -1) -> StepState:
    """Cut the text before token #step; with alt ≥ 0 append that step's alternative #alt instead."""
    if state is None:
        raise ValueError(NO_TEXT)
    alt = check_int("alternative", alt, -1, 1000)
    token_id = None if alt < 0 else alternative_id(svc, state, settings, step, alt)
    state = cut(state, step)
    return state if token_id is None else append(svc, state, settings, token_id, "branched")


@dataclass(frozen=True)
class BeamBranches:
    """What a beam search continued and every tree node's token path, to continue from any node later."""

    state: StepState
    paths: dict[int, tuple[int, ...]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)

    def choices(self) -> list[tuple[str, int]]:
        """(label, node id) for a dropdown, in tree order."""
        return [(self.labels[n], n) for n in self.paths]


def beam_branches(state: StepState, result: BeamResult) -> BeamBranches:
    """Every node's token path from the text the search continued, and a readable label for it."""
    paths: dict[int, tuple[int, ...]] = {-1: ()}
    texts: dict[int, str] = {-1: ""}
    labels: dict[int, str] = {}
    for node in result.nodes:  # parents come before their children
        paths[node.node_id] = paths[node.parent] + (node.token_id,)
        texts[node.node_id] = texts[node.parent] + node.label
        labels[node.node_id] = (f"step {node.step} · {texts[node.node_id]} ({node.status}, "
                                f"log-prob {node.cum_logprob:.2f})")
    paths.pop(-1)
    return BeamBranches(state, paths, labels)


def follow(svc: DecodeService, branches: BeamBranches | None, settings: SamplingSettings, node_id: Any,
           current: StepState | None = None) -> StepState:
    """The step-through text continued along a beam-tree node's path (each token one cached step). The
    session of `current` (the step-through's) is used, so its KV cache serves the common prefix."""
    if branches is None or not branches.paths:
        raise ValueError("Run beam search first, then click a node of its tree.")
    nid = check_int("node", node_id, 0, max(branches.paths))
    if nid not in branches.paths:
        raise ValueError(f"node must be one of the tree's nodes; got {node_id!r}.")
    state = branches.state
    if current is not None:
        state = replace(state, session_id=current.session_id)
    for tid in branches.paths[nid]:
        state = append(svc, state, settings, tid, "beam")
    return state
