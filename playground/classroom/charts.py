"""The presenter's chart: the class's votes next to the model's top tokens (one plotly figure, two panels).

Gradio-free. Before the reveal the model's panel stays empty unless the presenter chooses to show it: the
projector is the room's shared screen, and the tallest bar would give the answer away.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.classroom.views import RoomView

VOTE = "#60a5fa"
MODEL = "#a3a3a3"
CHOSEN = "#f59e0b"  # the model's choice, in both panels, after the reveal


def _esc(label: str) -> str:
    return html.escape(label, quote=False)


def room_figure(view: RoomView, show_model: bool = False) -> go.Figure:
    """Left: votes per token (pick-list order, then typed guesses). Right: the model's top tokens, best
    first, with probabilities. After the reveal the model's choice is orange in both."""
    chosen = view.chosen.label if view.chosen else None
    model_shown = view.revealed or show_model
    right = "The model's top tokens" if model_shown else "The model's top tokens<br>(hidden until the reveal)"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"The class's votes ({view.votes})", right),
                        horizontal_spacing=0.08)
    labels = [t for t, _ in view.tally]
    counts = [n for _, n in view.tally]
    fig.add_trace(go.Bar(x=[_esc(t) for t in labels], y=counts, name="votes", customdata=labels,
                         marker_color=[CHOSEN if t == chosen else VOTE for t in labels],
                         text=[str(n) if n else "" for n in counts], textposition="outside",
                         hovertemplate="%{x}: %{y} votes<extra></extra>"), row=1, col=1)
    top = view.model_top if model_shown else ()
    fig.add_trace(go.Bar(x=[_esc(c.label) for c in top], y=[c.prob for c in top], name="model",
                         customdata=[c.label for c in top],
                         marker_color=[CHOSEN if c.label == chosen else MODEL for c in top],
                         text=[f"{c.prob:.0%}" for c in top], textposition="outside",
                         hovertemplate="%{x}: p = %{y:.1%}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(title_text="votes", rangemode="tozero", dtick=1 if max(counts, default=0) < 10 else None,
                     row=1, col=1)
    fig.update_yaxes(title_text="probability", tickformat=".0%", range=[0, 1.1], row=1, col=2)
    # category axes: a token like "1" or "2024" must stay a label, not become a number on a numeric axis
    fig.update_xaxes(type="category", tickangle=-35)
    fig.update_layout(showlegend=False, height=420, margin=dict(l=50, r=20, t=60, b=90),
                      title=f"Round {view.round}" + (f": the model chose “{_esc(chosen)}”, {view.correct} of "
                                                     f"{view.votes} guessed it" if chosen else ""))
    return fig
