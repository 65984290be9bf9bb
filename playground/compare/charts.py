"""Plotly figures of the Compare tab: the held-out evaluation's metrics, base vs tuned."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.compare.evaluation import PERCENT, EvalResult


def metrics_figure(result: EvalResult) -> go.Figure:
    """One small bar chart per metric that applies (their scales differ), base vs tuned in each; the
    accuracies in % on a 0–100 axis, like the table beside it."""
    metrics = result.metrics
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[t for _, t in metrics])
    labels = [result.base.label, result.tuned.label]
    for i, (key, title) in enumerate(metrics, start=1):
        values = [getattr(result.base, key), getattr(result.tuned, key)]
        percent = key in PERCENT
        shown = [100 * v for v in values] if percent else values
        fig.add_trace(go.Bar(x=labels, y=shown, name=title, marker_color=["#9ca3af", "#2563eb"],
                             text=[f"{v:.1f} %" if percent else f"{v:.3g}" for v in shown], textposition="auto",
                             showlegend=False), 1, i)
        if percent:
            fig.update_yaxes(range=[0, 100], ticksuffix=" %", row=1, col=i)
    fig.update_layout(title=f"Held-out evaluation on {result.dataset} ({result.rows} rows)", height=340,
                      margin=dict(l=30, r=20, t=70, b=30))
    return fig
