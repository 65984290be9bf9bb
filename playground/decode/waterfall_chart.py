"""The waterfall chart: one small bar chart per active stage, stacked top to bottom in generate()'s order.

Gradio-free. Built unvalidated from plain dicts (like the distribution chart): it is redrawn on every slider
move and plotly's make_subplots + per-property validation would cost more than the maths.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import plotly.graph_objects as go

from playground.decode.charts import TRANSITION
from playground.decode.waterfall import StageRow

KEPT = "#1d4ed8"
STAGE_COLOR = {"raw": "#64748b", "bias": "#a855f7", "penalty": "#f97316", "no-repeat": "#ef4444",
               "banned": "#991b1b", "temperature": "#f59e0b", "top-h": "#0d9488", "top-k": "#db2777",
               "top-p": "#7c3aed", "min-p": "#0891b2", "typical": "#65a30d", "epsilon": "#ca8a04", "eta": "#9333ea",
               "greedy": "#374151"}
ROW_PX, TOP_PX, BOTTOM_PX, TITLE_PX, LABELS_PX = 160, 70, 10, 36, 50


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def waterfall_figure(rows: Sequence[StageRow]) -> go.Figure:
    """Row i: the stage's top tokens; kept ones blue at the probability the stage passes on, removed ones in
    the stage's own colour at the probability they had coming in, a grey tick at the incoming probability.
    The row's title: its rule with the current value, the tokens left and the probability mass kept."""
    n = max(1, len(rows))
    height = TOP_PX + BOTTOM_PX + ROW_PX * n
    px = 1.0 / (ROW_PX * n)  # one pixel in paper coordinates
    data: list[dict] = []
    layout: dict = dict(height=height, margin=dict(l=56, r=16, t=TOP_PX, b=BOTTOM_PX), barmode="overlay",
                        bargap=0.2, showlegend=True, hovermode="closest", transition=TRANSITION,
                        title=dict(text="Waterfall: the distribution after every stage, in generate()'s order",
                                   y=1 - 12 / height, yanchor="top", font=dict(size=15)),
                        legend=dict(orientation="h", y=1 + 6 / height, x=0, yanchor="bottom", font=dict(size=11)))
    notes, legend_seen = [], set()
    for i, row in enumerate(rows):
        ax = "" if i == 0 else str(i + 1)
        row_top = 1 - i / n  # each row: a two-line title, the bars, the token labels under them
        top, bottom = row_top - TITLE_PX * px, 1 - (i + 1) / n + LABELS_PX * px
        layout[f"xaxis{ax}"] = dict(anchor=f"y{ax}", domain=[0, 1], tickmode="array",
                                    tickvals=list(range(len(row.top))), ticktext=[t.token for t in row.top],
                                    tickangle=-40, tickfont=dict(size=9), range=[-0.6, max(len(row.top), 5) - 0.4])
        ymax = max([max(t.prob, t.prob_in) for t in row.top] + [0.01])
        layout[f"yaxis{ax}"] = dict(anchor=f"x{ax}", domain=[bottom, top], tickformat=".0%", tickfont=dict(size=9),
                                    range=[0, min(1.0, ymax * 1.15) if ymax < 0.87 else 1.0], nticks=3)
        color = STAGE_COLOR.get(row.name, "#6b7280")
        head = (f"<b>{i + 1}. {html.escape(row.name)}</b> · {html.escape(row.description)}<br>"
                f"<b>{row.kept_count:,}</b> token{'' if row.kept_count == 1 else 's'} left · "
                f"{_pct(row.mass)} of its input kept · {_pct(row.raw_mass)} of the raw probability"
                + (f" · removed {row.removed_count:,}" if row.removed_count else ""))
        notes.append(dict(xref="paper", yref="paper", x=0, y=row_top, xanchor="left", yanchor="top",
                          text=head, showarrow=False, align="left", font=dict(size=11, color="#111827")))
        xs = list(range(len(row.top)))
        ids = [str(t.token_id) for t in row.top]  # bars keyed by token, traces fixed per row: updates animate
        hover = [f"<b>{html.escape(t.token)}</b> (id {t.token_id})<br>in {_pct(t.prob_in)} → out {_pct(t.prob)}<br>"
                 f"{'removed here' if t.removed else 'kept'}" for t in row.top]  # strings: cheap to copy
        axes = dict(xaxis=f"x{ax}", yaxis=f"y{ax}", hovertext=hover,
                    hovertemplate="%{hovertext}<extra>" + html.escape(row.name) + "</extra>")
        data.append(dict(type="bar", x=xs, y=[None if t.removed else t.prob for t in row.top], name="kept",
                         uid=f"{row.name}-kept", ids=ids, legendgroup="kept", showlegend="kept" not in legend_seen,
                         marker=dict(color=KEPT), **axes))
        legend_seen.add("kept")
        # Always there (empty and out of the legend when the stage removed nothing): a trace that comes and
        # goes changes the trace count, and plotly redraws instead of animating.
        data.append(dict(type="bar", x=xs, y=[t.prob_in if t.removed else None for t in row.top],
                         name=f"removed by {row.name}", uid=f"{row.name}-removed", ids=ids,
                         showlegend=bool(row.removed_ids), marker=dict(color=color, opacity=0.85),
                         text=["✗" if t.removed else "" for t in row.top], textposition="outside",
                         textfont=dict(size=10, color=color), cliponaxis=False, **axes))
        if i:
            data.append(dict(type="scatter", mode="markers", x=xs, y=[t.prob_in for t in row.top], ids=ids,
                             uid=f"{row.name}-in", name="probability coming in", legendgroup="in",
                             showlegend="in" not in legend_seen,
                             marker=dict(symbol="line-ew-open", size=14, color="#111827", line=dict(width=2)),
                             xaxis=f"x{ax}", yaxis=f"y{ax}", hoverinfo="skip"))
            legend_seen.add("in")
    layout["annotations"] = notes
    return go.Figure(data=data, layout=layout, _validate=False)
