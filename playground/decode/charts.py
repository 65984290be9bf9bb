"""Plotly charts of the Decode tab: the next-token distribution, temperature explorer, beam tree.

Gradio-free: every function takes plain results and returns a plotly Figure.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.decode.beam import BeamResult
from playground.decode.processors import scaled_basis
from playground.decode.sampling import SamplingSettings, TokenRow, cumulative_basis
from playground.decode.settings import penalty_and_more

KEPT_RAW, KEPT_FINAL = "#93c5fd", "#1d4ed8"
GREY_RAW, GREY_FINAL = "#e5e7eb", "#9ca3af"
# Plotly animates a Plotly.react between two states of a figure with this (the traces and bars must stay the
# same ones: fixed uids, bars keyed by token id), so a temperature change moves the bars. Gradio itself
# redraws from scratch; presenter mode's script (ui/presenter.py) makes the update a react.
TRANSITION = dict(duration=400, easing="cubic-in-out")


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def distribution_figure(rows: Sequence[TokenRow], settings: SamplingSettings) -> go.Figure:
    """Raw vs final probability of the top tokens side by side (removed ones grey), the cumulative line of
    the distribution top-p actually cuts on (after the stages before it, named in the legend) and the top-p
    threshold. Built unvalidated from plain dicts: it is redrawn on every slider move and plotly's
    per-property validation would cost more than the maths."""
    x = [r.rank for r in rows]
    ids = [str(r.token_id) for r in rows]  # keys the bars: the same token's bar moves, wherever it ranks
    basis = cumulative_basis(settings)
    hover = [[r.token_id, r.rank, r.raw_prob, r.scaled_prob, r.final_prob, r.cumulative,
              r.removed_by or "kept", r.token, r.top_p_prob] for r in rows]
    template = ("<b>%{customdata[7]}</b><br>id %{customdata[0]} · rank %{customdata[1]}<br>"
                f"raw %{{customdata[2]:.2%}} · {scaled_basis(settings)[1]} %{{customdata[3]:.2%}}<br>"
                f"{basis} %{{customdata[8]:.2%}} · cumulative %{{customdata[5]:.2%}}<br>"
                "final %{customdata[4]:.2%} · %{customdata[6]}<extra></extra>")
    data = [
        dict(type="bar", x=x, y=[r.raw_prob for r in rows], name="raw probability", uid="raw", ids=ids,
             customdata=hover, hovertemplate=template,
             marker=dict(color=[KEPT_RAW if r.kept else GREY_RAW for r in rows])),
        dict(type="bar", x=x, y=[r.final_prob for r in rows], name="final (what generate() samples)", uid="final",
             ids=ids, customdata=hover, hovertemplate=template,
             marker=dict(color=[KEPT_FINAL if r.kept else GREY_FINAL for r in rows]),
             text=[_pct(r.final_prob) if r.kept else "removed" for r in rows], textposition="outside", textangle=-90,
             constraintext="none",
             textfont=dict(size=10), cliponaxis=False),
        dict(type="scatter", x=x, y=[r.cumulative for r in rows], mode="lines+markers", uid="cumulative", ids=ids,
             name=f"cumulative {basis}" + (" (what top-p cuts on)" if _top_p_on(settings) else " (top-p off)"),
             line=dict(color="#f59e0b", width=2), marker=dict(size=5), customdata=hover, hovertemplate=template),
    ]
    shapes, notes = [], []
    if _top_p_on(settings):  # the label sits in the right margin, clear of every bar
        shapes.append(dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=settings.top_p, y1=settings.top_p,
                           line=dict(color="#dc2626", dash="dash")))
        notes.append(dict(xref="paper", x=1, xshift=4, yref="y", y=settings.top_p, text=f"top-p<br>{settings.top_p:g}",
                          showarrow=False, xanchor="left", yanchor="middle", align="left",
                          font=dict(color="#dc2626", size=11)))
    layout = dict(barmode="group", height=480, margin=dict(l=50, r=56, t=120, b=90),
                  title=dict(text=_title(settings), y=0.985, yanchor="top", font=dict(size=15)),
                  legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom", font=dict(size=11)),
                  shapes=shapes, annotations=notes,
                  yaxis=dict(title=dict(text="probability"), tickformat=".0%"),
                  xaxis=dict(tickmode="array", tickvals=x, ticktext=[r.token for r in rows], tickangle=-45),
                  bargap=0.15, transition=TRANSITION)
    fig = go.Figure(data=data, layout=layout, _validate=False)
    fit_y_range(fig, settings.top_p if _top_p_on(settings) else 0.0)
    return fig


def _top_p_on(settings: SamplingSettings) -> bool:
    return settings.top_p < 1 and not settings.greedy


def fit_y_range(fig: go.Figure, *extra: float) -> None:
    """A y range that holds every bar and line of the figure (plus room for the value text above bars)."""
    top = max([float(v) for trace in fig.data for v in (trace.y or ()) if v is not None] + [0.0, *extra])
    fig.layout.yaxis.range = [0, min(1.32, top * 1.2 + 0.06)]
    if fig.layout.yaxis.range[1] > 1:  # headroom above 100 % holds the value text; no tick there
        fig.layout.yaxis.tickvals = [0, 0.2, 0.4, 0.6, 0.8, 1.0]


def add_base_overlay(fig: go.Figure, rows: Sequence[TokenRow], base_probs: Sequence[float], adapter: str) -> None:
    """Overlay the base model's raw probability of the same tokens (adapter disabled), beside the tuned bars."""
    fig.add_trace(go.Bar(x=[r.rank for r in rows], y=list(base_probs), name=f"base (without {adapter})", uid="base",
                         ids=[str(r.token_id) for r in rows],
                         marker=dict(color="#f97316"), customdata=[r.token for r in rows],
                         hovertemplate="<b>%{customdata}</b><br>base %{y:.2%}<extra></extra>"))
    fit_y_range(fig, *[s.y0 for s in fig.layout.shapes])


def _title(s: SamplingSettings) -> str:
    shaping = penalty_and_more(s)
    if s.greedy:
        after = f" after {', '.join(shaping)}" if shaping else ""
        return f"Greedy (temperature 0){after}: the top token gets 100 %"
    parts = [f"T={s.temperature:g}"]
    parts += [f"top-k {s.top_k}"] if s.top_k else []
    parts += [f"top-p {s.top_p:g}"] if s.top_p < 1 else []
    parts += [f"min-p {s.min_p:g}"] if s.min_p > 0 else []
    return "Next-token probabilities · " + ", ".join(parts + shaping)


def temperature_figure(sweep: Sequence[tuple[float, float, float]], after: str = "") -> go.Figure:
    """Top-1 probability and entropy (bits) against temperature; `after`: the text and penalty it was run for
    (a button draws it, so the title says what it shows after the prompt or the sliders change)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    temps = [t for t, _, _ in sweep]
    fig.add_scatter(x=temps, y=[p for _, p, _ in sweep], name="top-1 probability", mode="lines+markers",
                    line_color="#1d4ed8", secondary_y=False)
    fig.add_scatter(x=temps, y=[h for _, _, h in sweep], name="entropy (bits)", mode="lines+markers",
                    line_color="#f59e0b", secondary_y=True)
    fig.update_yaxes(title_text="top-1 probability", tickformat=".0%", range=[0, 1.02], secondary_y=False)
    fig.update_yaxes(title_text="entropy (bits)", secondary_y=True)
    fig.update_xaxes(title_text="temperature")
    fig.update_layout(height=340, margin=dict(l=50, r=50, t=40, b=40),
                      title=f"Temperature reshapes the distribution{after}", legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig


def small_multiples_figure(panels: Sequence[tuple[float, Sequence[tuple[str, float]]]]) -> go.Figure:
    """One small bar chart of the top tokens per temperature (same tokens, same y scale)."""
    fig = make_subplots(rows=1, cols=len(panels), shared_yaxes=True,
                        subplot_titles=[f"T = {t:g}" for t, _ in panels])
    for col, (_, bars) in enumerate(panels, start=1):
        fig.add_bar(x=[label for label, _ in bars], y=[p for _, p in bars], marker_color=KEPT_FINAL,
                    showlegend=False, text=[_pct(p) for _, p in bars], textposition="outside", textfont_size=8,
                    cliponaxis=False, hovertemplate="%{x}: %{y:.2%}<extra></extra>", row=1, col=col)
    fig.update_yaxes(tickformat=".0%", range=[0, 1.1])
    fig.update_xaxes(tickangle=-60, tickfont_size=9)
    fig.update_layout(height=340, margin=dict(l=40, r=10, t=70, b=80))
    return fig


STATUS_COLOR = {"kept": "#2563eb", "finished": "#16a34a", "pruned": "#d1d5db"}


def beam_tree_figure(result: BeamResult) -> go.Figure:
    """The search as a tree: x = step, one column of candidates per step ordered by cumulative log-prob.
    Kept beams blue, finished hypotheses green, pruned grey; generate()'s best beam drawn thick red,
    the greedy path dashed."""
    nodes = result.nodes
    y: dict[int, float] = {-1: 0.0}
    for step in sorted({n.step for n in nodes}):
        column = sorted((n for n in nodes if n.step == step), key=lambda n: -n.cum_logprob)
        for i, node in enumerate(column):
            y[node.node_id] = -(i - (len(column) - 1) / 2)
    x = {n.node_id: n.step for n in nodes} | {-1: 0}
    fig = go.Figure()
    for style, pick in (("pruned", lambda n: n.status == "pruned"),
                        ("searched", lambda n: n.status != "pruned" and not n.on_best),
                        ("best", lambda n: n.on_best)):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for n in nodes:
            if pick(n):
                xs += [x[n.parent], x[n.node_id], None]
                ys += [y[n.parent], y[n.node_id], None]
        line = {"pruned": dict(color="#e5e7eb", width=1), "searched": dict(color="#93c5fd", width=2),
                "best": dict(color="#dc2626", width=4)}[style]
        fig.add_scatter(x=xs, y=ys, mode="lines", line=line, hoverinfo="skip", showlegend=False)
    greedy = [n for n in nodes if n.on_greedy]
    if greedy:
        gx = [0] + [x[n.node_id] for n in sorted(greedy, key=lambda n: n.step)]
        gy = [0.0] + [y[n.node_id] for n in sorted(greedy, key=lambda n: n.step)]
        fig.add_scatter(x=gx, y=gy, mode="lines", name="greedy path", line=dict(color="#111827", width=2, dash="dot"),
                        hoverinfo="skip")  # hover and clicks go to the node markers on it
    for status, color in STATUS_COLOR.items():
        group = [n for n in nodes if n.status == status]
        if not group:
            continue
        fig.add_scatter(
            x=[x[n.node_id] for n in group], y=[y[n.node_id] for n in group], mode="markers",
            name={"kept": "kept beam", "finished": "finished hypothesis", "pruned": "pruned"}[status],
            marker=dict(color=color, size=[14 if n.on_final else 9 for n in group],
                        line=dict(color=["#dc2626" if n.on_best else "#ffffff" for n in group], width=2)),
            customdata=[[n.label, n.token_id, n.step_logprob, n.cum_logprob, n.status,
                         "" if n.score is None else f"score {n.score:.3f}", n.node_id] for n in group],
            hovertemplate=("<b>%{customdata[0]}</b> (id %{customdata[1]})<br>step log-prob %{customdata[2]:.3f}"
                           "<br>cumulative log-prob %{customdata[3]:.3f}<br>%{customdata[4]} %{customdata[5]}"
                           "<br><i>click to continue from here</i><extra></extra>"))
    # Token labels as annotations: drawn above every line, on a light box, so the best-beam line never hides them.
    labels = [dict(x=x[n.node_id], y=y[n.node_id], text=html.escape(n.label, quote=False), showarrow=False, xanchor="left",
                   xshift=9, font=dict(size=10, color="#111827" if n.status != "pruned" else "#6b7280"),
                   bgcolor="rgba(255,255,255,0.85)", borderpad=1) for n in nodes]
    root = _tail(result.context or "prompt", 28)
    labels.append(dict(x=0, y=0, text=html.escape(root, quote=False), showarrow=False, xanchor="right", xshift=-9,
                       font=dict(size=10, color="#111827"), bgcolor="rgba(255,255,255,0.85)",
                       hovertext=html.escape(_tail(result.context, 400), quote=False) or None))
    fig.add_scatter(x=[0], y=[0], mode="markers", marker=dict(color="#111827", size=10), showlegend=False,
                    hoverinfo="skip")
    fig.update_layout(height=max(360, 34 * max(len([n for n in nodes if n.step == 1]), 2 * result.settings.num_beams)),
                      margin=dict(l=190, r=110, t=40, b=40), annotations=labels,
                      title="Beam search tree (red: best beam from generate(); root: the text continued)",
                      xaxis=dict(title="step", dtick=1, range=[-0.3, result.settings.steps + 0.9]),
                      yaxis=dict(visible=False), legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig


def _tail(text: str, chars: int) -> str:
    """The end of a text, whitespace made visible, with … when cut."""
    shown = text if len(text) <= chars else "…" + text[-chars:]
    return shown.replace("\n", "↵")
