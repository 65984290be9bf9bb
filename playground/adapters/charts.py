"""The loss chart: one function for the Train tab's live run and the Adapters tab's saved adapters."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.adapters.library import AdapterInfo

LOSS_COLOR, SMOOTH_COLOR, EVAL_COLOR, LR_COLOR, GRAD_COLOR = "#9ecae9", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"
OVERLAY_COLORS = ["#7f7f7f", "#bcbd22", "#8c564b", "#e377c2", "#17becf"]
Points = list[dict[str, Any]]


def smooth(values: list[float], weight: float = 0.8) -> list[float]:
    """TensorBoard-style exponential moving average, debiased so the first points are not pulled to 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        if not math.isfinite(v):
            out.append(v)
            continue
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def finite_points(points: Points, key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of the points whose `key` is a finite number (NaN / missing points are left out)."""
    xs, ys = [], []
    for p in points:
        v, step = p.get(key), p.get("step")
        if isinstance(v, (int, float)) and math.isfinite(v) and isinstance(step, (int, float)):  # no step: no x
            xs.append(step)
            ys.append(float(v))
    return xs, ys


def loss_curve_figure(losses: Points, evals: Points, *, log_scale: bool = False,
                      overlays: dict[str, Points] | None = None, title: str = "", total_steps: int | None = None,
                      empty_text: str = "Start a run: the loss appears here step by step") -> go.Figure:
    """Top: train loss (raw + smoothed), eval loss markers, learning rate on a second axis, earlier runs'
    smoothed losses dashed. Bottom: gradient norm. `losses` are the training log points (step, loss,
    learning_rate, grad_norm), `evals` the eval points (step, eval_loss)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06,
                        specs=[[{"secondary_y": True}], [{"secondary_y": False}]])
    for i, (label, points) in enumerate((overlays or {}).items()):
        xs, ys = finite_points(points, "loss")
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=smooth(ys), mode="lines", name=f"{label} (earlier run)",
                                     line=dict(color=OVERLAY_COLORS[i % len(OVERLAY_COLORS)], dash="dash",
                                               width=1.5)), row=1, col=1)
    xs, ys = finite_points(losses, "loss")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(xs) < 40 else "lines", name="train loss",
                             line=dict(color=LOSS_COLOR, width=1), marker=dict(size=4)), row=1, col=1)
    fig.add_trace(go.Scatter(x=xs, y=smooth(ys), mode="lines", name="train loss (smoothed)",
                             line=dict(color=SMOOTH_COLOR, width=2.5)), row=1, col=1)
    ex, ey = finite_points(evals, "eval_loss")
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines+markers", name="eval loss",
                             line=dict(color=EVAL_COLOR, width=2), marker=dict(size=8, symbol="diamond")),
                  row=1, col=1)
    lx, ly = finite_points(losses, "learning_rate")
    fig.add_trace(go.Scatter(x=lx, y=ly, mode="lines", name="learning rate",
                             line=dict(color=LR_COLOR, width=1.5, dash="dot")), row=1, col=1, secondary_y=True)
    gx, gy = finite_points(losses, "grad_norm")
    fig.add_trace(go.Scatter(x=gx, y=gy, mode="lines", name="grad norm", line=dict(color=GRAD_COLOR, width=1.5)),
                  row=2, col=1)
    fig.update_yaxes(title_text="loss", type="log" if log_scale else "linear", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="learning rate", row=1, col=1, secondary_y=True, showgrid=False,
                     exponentformat="e", rangemode="tozero")
    fig.update_yaxes(title_text="grad norm", type="log" if log_scale else "linear", row=2, col=1)
    fig.update_xaxes(title_text="step", row=2, col=1)
    if total_steps:
        fig.update_xaxes(range=[0, total_steps * 1.02], row=2, col=1)
    if not xs and empty_text:
        fig.add_annotation(text=empty_text, showarrow=False,
                           xref="paper", yref="paper", x=0.5, y=0.75, font=dict(size=14, color="#6b7280"))
    fig.update_layout(height=480, margin=dict(l=50, r=50, t=40 if title else 20, b=40), title=title or None,
                      legend=dict(orientation="h", y=1.08, x=0), hovermode="x unified", uirevision="loss")
    return fig


def has_loss_history(info: AdapterInfo) -> bool:
    return bool(finite_points(info.loss_history, "loss")[0] or finite_points(info.eval_history, "eval_loss")[0])


def adapter_loss_figure(info: AdapterInfo) -> go.Figure | None:
    """The saved adapter's training curve, the same chart the Train tab drew live; None when it has no loss
    history (a mix or an import was never trained here, so there is nothing to draw)."""
    if not has_loss_history(info):
        return None
    return loss_curve_figure(info.loss_history, info.eval_history, title=f"Training loss of {info.name}",
                             empty_text="")
