"""Plotly figures of the Inside tab: logit-lens heatmaps, attention heatmaps, the head grid and the
last-token bars.

Gradio-free: every function takes a result dataclass (plus layer / head) and returns a plotly Figure.
Large matrices go in as numpy arrays (plotly sends them as compact typed arrays).
"""

from __future__ import annotations

import html
import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.inside.attention import AttentionResult
from playground.inside.lens import LensResult

SCALE = "Viridis"
ATTN_SCALE = [[0.0, "#eaf1fb"], [0.25, "#9ecae1"], [0.6, "#3182bd"], [1.0, "#08306b"]]  # 0 ≠ the blank triangle
TICK_LIMIT = 64    # above this many tokens, axes show positions instead of every token
HOVER_LIMIT = 96   # above this many tokens, hover shows positions only (keeps the figure small)


def _esc(label: str) -> str:
    return html.escape(label, quote=False)


def _ticks(labels: tuple[str, ...] | list[str], positions: list[int]) -> dict:
    if len(positions) > TICK_LIMIT:
        return {}
    return dict(tickmode="array", tickvals=positions, ticktext=[f"{_esc(labels[p])}" for p in positions])


def lens_top_figure(result: LensResult) -> go.Figure:
    """Layers (embeddings at the bottom) × the top-k tokens at the last position, coloured by probability."""
    layers = result.layers
    z = np.array([[t.prob for t in layer.top] for layer in layers])
    answer = result.answer.token_id
    text = [[f"<b>{_esc(t.token)}</b>" if t.token_id == answer else _esc(t.token) for t in layer.top]
            for layer in layers]
    hover = [[f"{layer.name} · rank {r + 1}<br>“{_esc(t.token)}” (id {t.token_id})<br>p = {t.prob:.2%}"
              for r, t in enumerate(layer.top)] for layer in layers]
    k = z.shape[1]
    fig = go.Figure(go.Heatmap(z=z, x=[f"#{r + 1}" for r in range(k)], y=[layer.name for layer in layers],
                               text=text, texttemplate="%{text}", textfont=dict(size=11), customdata=hover,
                               hovertemplate="%{customdata}<extra></extra>", colorscale=SCALE, zmin=0, zmax=1,
                               colorbar=dict(title="p", tickformat=".0%")))
    fig.update_layout(title=f"Logit lens at the last token: top {k} per layer (answer “{_esc(result.answer.token)}” "
                            "in bold)", height=max(360, 22 * len(layers) + 120),
                      margin=dict(l=90, r=20, t=60, b=40), xaxis=dict(side="top"))
    return fig


def lens_grid_figure(result: LensResult) -> go.Figure:
    """Layers × prompt positions: the lens's top-1 token (text and hover) and its probability (colour)."""
    positions = list(result.positions)
    labels = result.prompt.labels
    z = np.array([[t.prob for t in row] for row in result.grid])
    text = [[_esc(t.token) for t in row] for row in result.grid]
    hover = [[f"{result.layers[i].name} · position {p} (input “{_esc(labels[p])}”)<br>"
              f"top-1 “{_esc(t.token)}” (id {t.token_id}) · p = {t.prob:.2%}" for p, t in zip(positions, row)]
             for i, row in enumerate(result.grid)]
    fig = go.Figure(go.Heatmap(z=z, x=positions, y=[layer.name for layer in result.layers], text=text,
                               texttemplate="%{text}" if len(positions) <= 24 else None, textfont=dict(size=9),
                               customdata=hover, hovertemplate="%{customdata}<extra></extra>", colorscale=SCALE,
                               zmin=0, zmax=1, colorbar=dict(title="top-1 p", tickformat=".0%")))
    cut = "" if positions[0] == 0 else f" (last {len(positions)} of {len(labels)})"
    fig.update_layout(title=f"Top-1 token per layer at each position{cut}: hover a cell for the token",
                      height=max(360, 20 * len(result.layers) + 160), margin=dict(l=90, r=20, t=60, b=110),
                      xaxis=dict(title="input token (the prediction is for the token after it)", tickangle=-60,
                                 **_ticks(labels, positions)))
    return fig


def _masked(matrix: np.ndarray) -> np.ndarray:
    """Weights with the (empty) upper triangle blank, so the causal triangle shows."""
    out = matrix.astype(np.float64)
    out[np.triu_indices(out.shape[0], 1)] = np.nan
    return out


def _who(head: int) -> str:
    return "average over heads" if head == 0 else f"head {head}"


def attention_figure(result: AttentionResult, layer: int, head: int) -> go.Figure:
    """Tokens × tokens for one layer and head: row = the token attending (query), column = attended (key)."""
    layer, head = result.check(layer, head)
    mat = _masked(result.matrix(layer, head).numpy())
    labels, n = result.prompt.labels, len(result.prompt.labels)
    positions = list(range(n))
    trace = dict(z=mat, x=positions, y=positions, colorscale=ATTN_SCALE, zmin=0, zmax=1,
                 colorbar=dict(title="weight", tickformat=".0%"), hoverongaps=False)
    if n <= HOVER_LIMIT:
        trace["customdata"] = [[f"“{_esc(labels[q])}” ({q}) → “{_esc(labels[k])}” ({k})" for k in positions]
                               for q in positions]
        trace["hovertemplate"] = "%{customdata}<br>weight %{z:.2%}<extra></extra>"
    else:
        trace["hovertemplate"] = "query %{y} → key %{x}<br>weight %{z:.2%}<extra></extra>"
    fig = go.Figure(go.Heatmap(**trace))
    ticks = _ticks(labels, positions)
    size = min(760, max(360, 14 * n + 160))
    fig.update_layout(title=f"Attention in layer {layer}, {_who(head)}", height=size, plot_bgcolor="white",
                      margin=dict(l=110, r=20, t=50, b=110),
                      xaxis=dict(title="attended token (key)", tickangle=-60, showgrid=False, **ticks),
                      yaxis=dict(title="attending token (query)", autorange="reversed", showgrid=False, **ticks))
    return fig


def heads_grid_figure(result: AttentionResult, layer: int) -> go.Figure:
    """Every head of one layer as a small heatmap (same colour scale), to spot the heads with a pattern."""
    layer, _ = result.check(layer, 0)
    heads = result.num_heads
    cols = min(heads, 6 if heads > 8 else 4)
    rows = math.ceil(heads / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"head {h + 1}" for h in range(heads)],
                        horizontal_spacing=0.02, vertical_spacing=0.06 if rows > 1 else 0.1)
    block = result.weights[layer - 1].numpy()
    for h in range(heads):
        fig.add_trace(go.Heatmap(z=_masked(block[h]), coloraxis="coloraxis", hoverongaps=False,
                                 hovertemplate=f"head {h + 1}<br>query %{{y}} → key %{{x}}<br>"
                                               "weight %{z:.2%}<extra></extra>"),
                      row=h // cols + 1, col=h % cols + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, autorange="reversed")
    fig.update_layout(title=f"All {heads} heads of layer {layer} (pick one in “head” to enlarge it)",
                      coloraxis=dict(colorscale=ATTN_SCALE, cmin=0, cmax=1,
                                     colorbar=dict(title="weight", tickformat=".0%")),
                      height=max(300, 170 * rows + 80), plot_bgcolor="white", margin=dict(l=20, r=20, t=70, b=20))
    return fig


def last_token_figure(result: AttentionResult, layer: int, head: int) -> go.Figure:
    """Bars over the prompt: how much the last token attends to each token (one head or their average)."""
    layer, head = result.check(layer, head)
    row = result.last_row(layer, head).numpy()
    labels = result.prompt.labels
    positions = list(range(len(labels)))
    fig = go.Figure(go.Bar(x=positions, y=row, marker_color="#4c78a8",
                           customdata=[f"“{_esc(t)}” ({i})" for i, t in enumerate(labels)],
                           hovertemplate="%{customdata}<br>weight %{y:.2%}<extra></extra>"))
    fig.update_layout(title=f"What the last token “{_esc(labels[-1])}” attends to: layer {layer}, {_who(head)}",
                      height=360, margin=dict(l=50, r=20, t=50, b=110), yaxis=dict(title="weight", tickformat=".0%"),
                      xaxis=dict(tickangle=-60, **_ticks(labels, positions)))
    return fig
