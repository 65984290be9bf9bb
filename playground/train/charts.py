"""Plotly figures of the Train tab: the live loss chart and the token-length histogram."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from playground.adapters.charts import EVAL_COLOR, SMOOTH_COLOR, loss_curve_figure


def loss_figure(losses: list[dict[str, Any]], evals: list[dict[str, Any]], *, log_scale: bool = False,
                overlays: dict[str, list[dict[str, Any]]] | None = None, title: str = "",
                total_steps: int | None = None) -> go.Figure:
    """Top: train loss (raw + smoothed), eval loss markers, learning rate on a second axis, earlier runs'
    smoothed losses dashed. Bottom: gradient norm. The one loss chart of the app, shared with the Adapters tab:
    playground.adapters.charts.loss_curve_figure."""

    return loss_curve_figure(losses, evals, log_scale=log_scale, overlays=overlays, title=title,
                             total_steps=total_steps)


def length_bins(lengths: list[int], max_bins: int = 40) -> tuple[int, int, int]:
    """(start, end, size) of whole-token histogram bins spanning exactly the data: every length falls in
    [start, end), bars fill the width whatever the max sequence length is."""
    lo, hi = min(lengths), max(lengths)
    bins = min(max_bins, max(5, len(set(lengths))))
    size = max(1, math.ceil((hi - lo + 1) / bins))
    return lo, lo + size * math.ceil((hi - lo + 1) / size), size


def length_histogram(lengths: list[int], max_length: int | None, axis_title: str = "tokens per row") -> go.Figure:
    """Token lengths of the formatted rows. The x axis spans the data (not 0 .. max length, which squashed
    short rows into a sliver); the max sequence length is a dashed line when it falls inside, else a note.
    `max_length` None: nothing cuts the rows (GRPO's prompts), so there is no line and no note."""
    fig = go.Figure()
    if lengths:
        start, end, size = length_bins(lengths)
        fig.add_trace(go.Histogram(x=lengths, xbins=dict(start=start, end=end, size=size), autobinx=False,
                                   name="rows", marker_color=SMOOTH_COLOR))
        fig.update_xaxes(range=[start, end])
    if max_length is not None:
        over = sum(n > max_length for n in lengths)
        note = f"max length {max_length} ({over} row{'s' if over != 1 else ''} truncated)"
        if lengths and start <= max_length <= end:
            fig.add_vline(x=max_length, line=dict(color=EVAL_COLOR, dash="dash"), annotation_text=note)
        else:
            fig.add_annotation(text=note, xref="paper", yref="paper", x=1, y=1.08, xanchor="right",
                               showarrow=False, font=dict(color=EVAL_COLOR))
    fig.update_layout(height=260, margin=dict(l=40, r=10, t=30, b=40), xaxis_title=axis_title,
                      yaxis_title="rows", bargap=0.05)
    return fig
