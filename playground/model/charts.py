"""Plotly figures of the Model tab (the estimator's numbers come from playground.model.memory)."""

from __future__ import annotations

import plotly.graph_objects as go

from playground.model.memory import MemoryBreakdown

COLORS = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b"]


def memory_chart(breakdown: MemoryBreakdown, title: str = "Estimated training memory") -> go.Figure:
    """One stacked bar (GiB) with a segment per component and the total on top."""
    gib = 1 << 30
    fig = go.Figure()
    for (label, value), color in zip(breakdown.parts(), COLORS):
        fig.add_bar(name=label, x=["estimate"], y=[value / gib], marker_color=color,
                    hovertemplate=f"{label}: %{{y:.3f}} GiB<extra></extra>")
    fig.update_layout(barmode="stack", title=f"{title}: {breakdown.total / gib:.2f} GiB",
                      yaxis_title="GiB", height=380, margin=dict(l=40, r=10, t=50, b=30),
                      legend=dict(orientation="h", y=-0.1))
    return fig
