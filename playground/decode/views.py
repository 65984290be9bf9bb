"""What the Decode tab and its API endpoints show, computed from the logic modules (Gradio-free).

Each function takes the DecodeService plus plain values/dataclasses and returns plain data, figures or
HTML, so the UI module only maps them onto components.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from playground.decode.beam import BeamSettings, beam_search
from playground.decode.beam_report import cell_text, final_rows, listed_greedy, summary_markdown
from playground.decode.branch import BeamBranches, beam_branches
from playground.decode.charts import (
    add_base_overlay,
    beam_tree_figure,
    distribution_figure,
    small_multiples_figure,
    temperature_figure,
)
from playground.decode.processors import pipeline_stages, reshaped_by, scaled_basis
from playground.decode.sampling import (
    Distribution,
    SamplingSettings,
    TokenRow,
    analyze,
    cumulative_basis,
    temperature_sweep,
    top_rows,
)
from playground.decode.session import DecodeService, StepState
from playground.decode.settings import FIVE, MORE
from playground.decode.strategies import run_strategy, strategy_runs
from playground.decode.stream import GenerateRequest, generate_all
from playground.decode.text_view import branchable_text_html
from playground.decode.tokens import template_html
from playground.decode.waterfall import StageRow, waterfall_rows
from playground.decode.waterfall_chart import waterfall_figure
from playground.decode.words import eos_ids, parse_banned_words, parse_sequence_bias
from playground.model.turns import Urgency

# The table's columns in pipeline order, each named by its basis (all in %); "base raw" joins with an adapter.
TABLE_HEADERS = ["#", "token", "id", "raw", "after temp.", "top-p cum.", "after filters", "kept"]
BASE_HEADER = "base raw"
# Relative column widths, enough for each header to wrap at its spaces only (never inside a word).
COLUMN_WIDTHS = {"#": 30, "token": 128, "id": 58, "raw": 58, BASE_HEADER: 58, "after temp.": 66,
                 "top-p cum.": 66, "after filters": 74, "kept": 78}
COMPARE_HEADERS = ["strategy", "settings", "continuation", "log-prob", "geometric mean token prob"]
RUNNING = "⏳ running…"
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
    headers: list[str]
    stages: list[StageRow]
    waterfall: go.Figure


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def mass_kept_words(dist: Distribution) -> str:
    """The mass the kept tokens hold, each number named by its basis: of the distribution the filters received
    (after temperature etc.) and of the raw one, the waterfall's "of the raw probability"; once when no stage
    reshaped the scores (the two are then the same)."""
    raw = f"{100 * dist.raw_mass_kept:.1f} % of the raw probability"
    if all(stage.filters for stage in pipeline_stages(dist.settings)):
        return raw
    return f"{100 * dist.mass_kept:.1f} % of the distribution {scaled_basis(dist.settings)[1]} · {raw}"


def stats_markdown(dist: Distribution, adapter: str | None = None) -> str:
    """Entropy, effective choices, mass kept (each saying which distribution it is measured on), and what each
    table column is measured on."""
    s = dist.settings
    kept = f"{_plural(1, 'token')}, greedy" if s.greedy else _plural(dist.kept_count, "token")
    base = f" · *base raw*: the base model without {adapter}" if adapter else ""
    header, words = scaled_basis(s)
    scaled = (f"*{header}*: greedy applies no temperature, so the same as raw" if not reshaped_by(s) else
              f"*{header}*: {words} (the stages that reshape rather than remove)")
    final = "one token at 100 %" if s.greedy else "after filters"
    return (f"**Entropy:** {dist.entropy_bits:.2f} bits, of the final distribution ({final})  \n"
            f"**Effective choices (2^entropy):** {dist.effective_choices:.1f}, of the final distribution  \n"
            f"**Probability mass kept:** {mass_kept_words(dist)} ({kept})\n\n"
            "<small>Table columns in pipeline order (%): *#*: rank · *raw*: the model's softmax"
            f"{base} · {scaled} · *top-p cum.*: running sum of what top-p cuts on ({cumulative_basis(s)}) · "
            "*after filters*: after top-k / top-p / min-p and every other stage, "
            "renormalised: what generate() samples from.</small>")


def _pct(p: float) -> float:
    return float(f"{100 * p:.3g}")


def table_rows(rows: Sequence[TokenRow], base_probs: Sequence[float] | None = None) -> list[list[Any]]:
    """The course's table in pipeline order (see TABLE_HEADERS); with base_probs a base column after raw."""
    out = []
    for i, r in enumerate(rows):
        base = [] if base_probs is None else [_pct(base_probs[i])]
        out.append([r.rank, r.token, r.token_id, _pct(r.raw_prob), *base, _pct(r.scaled_prob), _pct(r.cumulative),
                    _pct(r.final_prob), "✓" if r.kept else f"✗ {r.removed_by}"])
    return out


def column_widths(headers: Sequence[str]) -> list[str]:
    widths = [COLUMN_WIDTHS.get(h, 74 if h.startswith(("after ", "no temp.")) else 60) for h in headers]
    return [f"{100 * w / sum(widths):.1f}%" for w in widths]


def table_headers(with_base: bool, settings: SamplingSettings | None = None) -> list[str]:
    """TABLE_HEADERS, the scaled column named by the stages that reshaped it (scaled_basis) when settings given."""
    headers = list(TABLE_HEADERS)
    if settings is not None:
        headers[4] = scaled_basis(settings)[0]
    return headers[:4] + [BASE_HEADER] + headers[4:] if with_base else headers


def candidate_choices(rows: Sequence[TokenRow], k: int = CANDIDATES) -> list[tuple[str, int]]:
    return [(f"{r.token}  {100 * r.final_prob:.1f}%", r.token_id) for r in rows[:k]]


def built_text_html(tokenizer: Any, state: StepState) -> str:
    """The prompt followed by the chosen tokens, coloured by probability, alternatives (to branch) on hover."""
    return branchable_text_html(tokenizer, state)


KNOB_NAMES = (*FIVE, *MORE, "sequence_bias", "banned_words")  # the Decode tab's knobs, in input order


def settings_from_values(svc: DecodeService, *values: Any) -> SamplingSettings:
    """SamplingSettings from the tab's / API's knob values in KNOB_NAMES order (missing trailing ones: off);
    the sequence-bias and banned-words texts are tokenized with the current model's tokenizer."""
    named = dict(zip(KNOB_NAMES, values))
    bias_text, banned_text = named.pop("sequence_bias", ""), named.pop("banned_words", "")
    extra = {}
    if bias_text:
        extra["sequence_bias"] = parse_sequence_bias(svc.tokenizer(), bias_text)
    if banned_text:
        tokenizer, config = svc.tokenizer(), getattr(svc.store.current.base_model, "generation_config", None)
        extra["bad_words_ids"] = parse_banned_words(tokenizer, banned_text, eos_ids(tokenizer, config))
    return SamplingSettings(**named, **extra)


def distribution_view(svc: DecodeService, state: StepState, settings: SamplingSettings, top_n: int) -> DistributionView:
    """Everything under the prompt for the current text. Model runs only when the logits are not cached."""
    dist = svc.distribution(state.ids, settings, state.session_id)
    tokenizer = svc.tokenizer()
    rows = top_rows(dist, tokenizer, top_n)
    figure = distribution_figure(rows, settings)
    base = svc.base_probs(state.ids)
    adapter, base_probs = None, None
    if base is not None:  # an adapter is active: show what the base model would say for the same tokens
        adapter, base_probs = svc.store.current.active_adapter, [float(base[r.token_id]) for r in rows]
        add_base_overlay(figure, rows, base_probs, adapter)
    stages = waterfall_rows(dist, tokenizer, top_n)
    return DistributionView(figure=figure, stats=stats_markdown(dist, adapter),
                            table=table_rows(rows, base_probs), candidates=candidate_choices(rows),
                            text_html=built_text_html(tokenizer, state), rows=rows, dist=dist,
                            headers=table_headers(base_probs is not None, settings), stages=stages,
                            waterfall=waterfall_figure(stages))


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
    text = tokenizer.decode(list(state.ids), skip_special_tokens=True).replace("\n", " ").strip()
    after = f" after “{'…' * (len(text) > 40)}{text[-40:]}”"
    if settings.repetition_penalty != 1:
        after += f" (repetition penalty {settings.repetition_penalty:g})"
    return temperature_figure(temperature_sweep(log_scores, SWEEP), after), small_multiples_figure(panels)


def beam_run(svc: DecodeService, state: StepState,
             settings: BeamSettings) -> tuple[str, go.Figure, list[list[Any]], BeamBranches]:
    """The summary (which text is continued, best beam vs greedy), the tree, the ranked table, and every
    node's path (to continue from any node in the step-through)."""
    with svc.store.reading(Urgency.GENERATE) as lm:
        result = beam_search(lm, list(state.ids), settings)
    return (summary_markdown(result, len(state.chosen)), beam_tree_figure(result), final_rows(result),
            beam_branches(state, result))


def beam_view(svc: DecodeService, state: StepState, settings: BeamSettings) -> tuple[str, go.Figure, list[list[Any]]]:
    """The summary, the tree and the ranked table (beam_run without the node paths)."""
    return beam_run(svc, state, settings)[:3]


def comparison_stream(svc: DecodeService, state: StepState, settings: SamplingSettings, num_beams: int,
                      max_new_tokens: int, seed: int) -> Iterator[list[list[Any]]]:
    """Greedy · beam · sampled, one row as each finishes (the rest say RUNNING). The model lock is taken per
    strategy, never across a yield; a model/adapter switch in between is refused rather than mixed."""
    runs = strategy_runs(settings, num_beams, seed)
    rows: list[list[Any]] = [[r.name, r.detail, RUNNING, None, None] for r in runs]
    yield [list(row) for row in rows]
    revision = svc.store.revision
    for i, run in enumerate(runs):
        with svc.store.reading(Urgency.GENERATE) as lm:
            if svc.store.revision != revision:
                raise ValueError("The model or adapter changed during the comparison: run it again.")
            r = run_strategy(lm, list(state.ids), run, max_new_tokens, seed)
        rows[i] = [r.name, r.detail, cell_text(r.text), round(r.sum_logprob, 3), f"{100 * r.geometric_mean_prob:.1f}%"]
        yield [list(row) for row in rows]


# ---------------------------------------------------------------- API payloads

def api_next_token(svc: DecodeService, prompt: str, chat: bool, settings: SamplingSettings, top_n: int) -> dict[str, Any]:
    state = StepState(prompt=svc.encode(prompt, chat))
    dist = svc.distribution(state.ids, settings)
    rows = top_rows(dist, svc.tokenizer(), top_n)
    return {"prompt_tokens": len(state.ids), "notice": state.prompt.notice, "entropy_bits": dist.entropy_bits,
            "effective_choices": dist.effective_choices, "mass_kept": dist.mass_kept,
            "kept_count": dist.kept_count, "cumulative_basis": cumulative_basis(settings),
            "after_temperature_basis": scaled_basis(settings)[1],
            "rows": [r.as_api() for r in rows],
            "stages": [row.as_api() for row in waterfall_rows(dist, svc.tokenizer(), top_n)]}


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
    with svc.store.reading(Urgency.GENERATE) as lm:
        result = listed_greedy(beam_search(lm, list(state.ids), settings))  # the numbers the tab shows
    return {"notice": state.prompt.notice, "continues": result.context,
            "sequences": [s.as_api() for s in result.final],
            "greedy": result.greedy.as_api() if result.greedy else None,
            "beam_beats_greedy": result.beam_beats_greedy, "beam_vs_greedy": result.beam_vs_greedy,
            "tree": [n.as_api() for n in result.nodes]}
