"""What the Decode tab and its API endpoints show, computed from the logic modules (Gradio-free).

Each function takes the DecodeService plus plain values/dataclasses and returns plain data, figures or
HTML, so the UI module only maps them onto components.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from playground.decode.beam import BeamResult, BeamSettings, beam_search, compare_strategies
from playground.decode.charts import (
    add_base_overlay,
    beam_tree_figure,
    distribution_figure,
    small_multiples_figure,
    temperature_figure,
)
from playground.decode.session import ChosenToken, DecodeService, StepState
from playground.decode.stream import GenerateRequest, generate_all
from playground.decode.sampling import Distribution, SamplingSettings, TokenRow, analyze, temperature_sweep, top_rows
from playground.decode.tokens import TextPiece, incremental_texts, pieces_html, template_html

TABLE_HEADERS = ["rank", "token", "id", "probability", "cumulative", "final", "kept"]
CANDIDATES = 12                       # clickable candidates under the chart
SWEEP = [round(0.1 * i, 1) for i in range(1, 21)]
MULTIPLES = (0.3, 0.7, 1.0, 1.5, 2.0)


@dataclass
class DistributionView:
    figure: go.Figure
    stats: str
    table: list[list[Any]]
    candidates: list[tuple[str, int]]
    text_html: str
    rows: list[TokenRow]
    dist: Distribution


def stats_markdown(dist: Distribution) -> str:
    s = dist.settings
    kept = "1 token (greedy)" if s.greedy else f"{dist.kept_count:,} tokens"
    return (f"**Entropy:** {dist.entropy_bits:.2f} bits  \n"
            f"**Effective choices (2^entropy):** {dist.effective_choices:.1f}  \n"
            f"**Probability mass kept:** {100 * dist.mass_kept:.1f} % ({kept})")


def table_rows(rows: Sequence[TokenRow]) -> list[list[Any]]:
    """The course's table: token, id, probability, cumulative, rank, kept (probabilities in %)."""
    return [[r.rank, r.token, r.token_id, float(f"{100 * r.raw_prob:.3g}"), float(f"{100 * r.cumulative:.3g}"),
             float(f"{100 * r.final_prob:.3g}"), "✓" if r.kept else f"✗ {r.removed_by}"] for r in rows]


def candidate_choices(rows: Sequence[TokenRow], k: int = CANDIDATES) -> list[tuple[str, int]]:
    return [(f"{r.token}  {100 * r.final_prob:.1f}%", r.token_id) for r in rows[:k]]


def built_text_html(tokenizer: Any, state: StepState) -> str:
    """The prompt followed by the chosen tokens, coloured by probability, alternatives on hover."""
    texts = incremental_texts(tokenizer, state.prompt.ids, [c.token_id for c in state.chosen])
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces = [TextPiece(text=t if t or not c.label else "", prob=c.prob, hover=_hover(c),
                        special=c.token_id in special) for t, c in zip(texts, state.chosen)]
    body = pieces_html(state.prompt.text if not state.prompt.chat else state.prompt.fed_text, pieces)
    if not state.chosen:
        body += "<p style='color:#6b7280'>Click a candidate, or use Sample / Greedy / Generate, to append tokens.</p>"
    return body


def _hover(c: ChosenToken) -> str:
    alts = "\n".join(f"  {i}. {label}  {100 * p:.1f}%" for i, (label, p) in enumerate(c.alternatives, start=1))
    return (f"{c.label}: {100 * c.prob:.1f}% (rank {c.rank}, {c.how}; model's own {100 * c.raw_prob:.1f}%)\n"
            f"top alternatives at this step:\n{alts}")


def distribution_view(svc: DecodeService, state: StepState, settings: SamplingSettings, top_n: int) -> DistributionView:
    """Everything under the prompt for the current text. Model runs only when the logits are not cached."""
    dist = svc.distribution(state.ids, settings, state.session_id)
    tokenizer = svc.tokenizer()
    rows = top_rows(dist, tokenizer, top_n)
    figure = distribution_figure(rows, settings)
    base = svc.base_probs(state.ids)
    if base is not None:  # an adapter is active: show what the base model would say for the same tokens
        add_base_overlay(figure, rows, [float(base[r.token_id]) for r in rows], svc.store.current.active_adapter)
    return DistributionView(figure=figure, stats=stats_markdown(dist),
                            table=table_rows(rows), candidates=candidate_choices(rows),
                            text_html=built_text_html(tokenizer, state), rows=rows, dist=dist)


def template_view(svc: DecodeService, state: StepState) -> str:
    p = state.prompt
    return template_html(svc.tokenizer(), p.fed_text, p.ids, p.dropped)


def explorer_figures(svc: DecodeService, state: StepState, settings: SamplingSettings) -> tuple[go.Figure, go.Figure]:
    """Top-1 probability and entropy against temperature, and bar charts at a few temperatures (temperature
    alone, after any repetition penalty; the filters are left out so the shape change is visible)."""
    logits = svc.logits(state.ids, state.session_id)
    base = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,
                            repetition_penalty=settings.repetition_penalty)
    penalised = analyze(logits, state.ids, base)
    top = penalised.order[:8].tolist()
    tokenizer = svc.tokenizer()
    labels = [r.token for r in top_rows(penalised, tokenizer, 8)]
    log_scores = penalised.scaled_probs.clamp_min(1e-30).log()  # same ranking, penalty applied
    panels = []
    for t in MULTIPLES:
        d = analyze(log_scores, state.ids, SamplingSettings(temperature=t, top_k=0, top_p=1.0, min_p=0.0))
        panels.append((t, [(label, float(d.final_probs[i])) for label, i in zip(labels, top)]))
    return temperature_figure(temperature_sweep(log_scores, SWEEP)), small_multiples_figure(panels)


def beam_view(svc: DecodeService, state: StepState, settings: BeamSettings) -> tuple[BeamResult, go.Figure, list[list[Any]]]:
    with svc.store.use() as lm:
        result = beam_search(lm, list(state.ids), settings)
    rows = [[i, seq.text, round(seq.score, 4), round(seq.sum_logprob, 4), f"{seq.probability:.3g}"]
            for i, seq in enumerate(result.final, start=1)]
    if result.greedy is not None:
        g = result.greedy
        rows.append(["greedy", g.text, round(g.score, 4), round(g.sum_logprob, 4), f"{g.probability:.3g}"])
    return result, beam_tree_figure(result), rows


def comparison_rows(svc: DecodeService, state: StepState, settings: SamplingSettings, num_beams: int,
                    max_new_tokens: int, seed: int) -> list[list[Any]]:
    with svc.store.use() as lm:
        results = compare_strategies(lm, list(state.ids), settings, num_beams, max_new_tokens, seed)
    return [[r.name, r.detail, r.text, round(r.sum_logprob, 3), f"{100 * r.mean_token_prob:.1f}%"] for r in results]


# ---------------------------------------------------------------- API payloads

def api_next_token(svc: DecodeService, prompt: str, chat: bool, settings: SamplingSettings, top_n: int) -> dict[str, Any]:
    state = StepState(prompt=svc.encode(prompt, chat))
    dist = svc.distribution(state.ids, settings)
    rows = top_rows(dist, svc.tokenizer(), top_n)
    return {"prompt_tokens": len(state.ids), "notice": state.prompt.notice, "entropy_bits": dist.entropy_bits,
            "effective_choices": dist.effective_choices, "mass_kept": dist.mass_kept,
            "kept_count": dist.kept_count, "rows": [r.as_api() for r in rows]}


def api_generate(svc: DecodeService, prompt: str, chat: bool, settings: SamplingSettings, max_new_tokens: int,
                 seed: int) -> dict[str, Any]:
    encoded = svc.encode(prompt, chat)
    tokens = generate_all(svc.store, GenerateRequest(encoded.ids, settings, max_new_tokens, seed))
    tokenizer = svc.tokenizer()
    text = tokenizer.decode([t.token_id for t in tokens], skip_special_tokens=False,
                            clean_up_tokenization_spaces=False)
    return {"text": text, "notice": encoded.notice, "tokens": [t.as_api() for t in tokens]}


def api_beam_search(svc: DecodeService, prompt: str, chat: bool, settings: BeamSettings) -> dict[str, Any]:
    state = StepState(prompt=svc.encode(prompt, chat))
    with svc.store.use() as lm:
        result = beam_search(lm, list(state.ids), settings)
    return {"notice": state.prompt.notice, "sequences": [s.as_api() for s in result.final],
            "greedy": result.greedy.as_api() if result.greedy else None,
            "beam_beats_greedy": result.beam_beats_greedy, "tree": [n.as_api() for n in result.nodes]}
