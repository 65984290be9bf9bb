"""The live view of DPO and GRPO runs (Gradio-free): the reward chart, the sampled answers, a line on the method.

DPO: TRL's rewards of the chosen and the rejected answers (β × log-ratio to the reference), their margin, and the
preference accuracy (share of pairs in the step whose chosen reward is higher), with eval points when there are.
GRPO: the mean reward (total and per rule) with its spread, the answers' mean length, and the KL to the reference;
below them what GRPO can still learn from: the samples' entropy and the share of prompts whose answers all scored
the same (TRL's frac_reward_zero_std: their advantages are 0, so the reward has nothing to teach there). When the
samples sharpen, the reward stops rising for that reason, which the reward line alone does not show.
"""

from __future__ import annotations

import dataclasses
import html
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.train.status import RunStatus

DPO_LINES = [("rewards/chosen", "chosen reward", "#16a34a"), ("rewards/rejected", "rejected reward", "#dc2626"),
             ("rewards/margins", "margin", "#2563eb")]
ACCURACY_COLOR, LENGTH_COLOR, KL_COLOR = "#9333ea", "#0891b2", "#d97706"
ENTROPY_COLOR, NO_SIGNAL_COLOR = "#4b5563", "#dc2626"
RULE_COLORS = ["#16a34a", "#db2777", "#0891b2", "#ca8a04"]
SHARE_AXIS = dict(range=[-0.05, 1.05], tickformat=".0%")  # a y axis for shares (0-1), shown as percentages


def _xy(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def dpo_figure(st: RunStatus) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.08,
                        subplot_titles=("Implicit rewards (β · log π/π_ref)", "Preference accuracy"))
    for key, name, color in DPO_LINES:
        x, y = _xy(st.rewards, key)
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines+markers", line=dict(color=color),
                                 marker=dict(size=4)), row=1, col=1)
        ex, ey = _xy(st.eval_rewards, key)
        if ex:
            fig.add_trace(go.Scatter(x=ex, y=ey, name=f"eval {name}", mode="markers",
                                     marker=dict(color=color, size=9, symbol="diamond")), row=1, col=1)
    x, y = _xy(st.rewards, "rewards/accuracies")
    fig.add_trace(go.Scatter(x=x, y=y, name="accuracy", mode="lines+markers", line=dict(color=ACCURACY_COLOR),
                             marker=dict(size=4)), row=2, col=1)
    ex, ey = _xy(st.eval_rewards, "rewards/accuracies")
    if ex:
        fig.add_trace(go.Scatter(x=ex, y=ey, name="eval accuracy", mode="markers",
                                 marker=dict(color=ACCURACY_COLOR, size=9, symbol="diamond")), row=2, col=1)
    fig.update_yaxes(**SHARE_AXIS, row=2, col=1)
    return _layout(fig, st)


def grpo_figure(st: RunStatus) -> go.Figure:
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.46, 0.27, 0.27], vertical_spacing=0.07,
                        subplot_titles=("Mean reward (band: ± spread)", "Answer length (tokens) and KL",
                                        "What is left to learn from: samples' entropy and prompts with no signal"),
                        specs=[[{}], [{"secondary_y": True}], [{"secondary_y": True}]])
    x, y = _xy(st.rewards, "reward")
    _, spread = _xy(st.rewards, "reward_std")
    if len(spread) == len(y) and y:
        fig.add_trace(go.Scatter(x=x + x[::-1], y=[a + b for a, b in zip(y, spread)] +
                                 [a - b for a, b in zip(y, spread)][::-1], fill="toself", line=dict(width=0),
                                 fillcolor="rgba(37,99,235,0.15)", name="spread", hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=y, name="total reward", mode="lines+markers", line=dict(color="#2563eb", width=3),
                             marker=dict(size=4)), row=1, col=1)
    rules = sorted({k.split("/")[1] for r in st.rewards for k in r if k.startswith("rewards/") and k.endswith("/mean")})
    for i, rule in enumerate(rules):
        rx, ry = _xy(st.rewards, f"rewards/{rule}/mean")
        fig.add_trace(go.Scatter(x=rx, y=ry, name=f"{rule} (unweighted)", mode="lines",
                                 line=dict(color=RULE_COLORS[i % len(RULE_COLORS)], dash="dot")), row=1, col=1)
    lx, ly = _xy(st.rewards, "completions/mean_length")
    fig.add_trace(go.Scatter(x=lx, y=ly, name="answer length", mode="lines", line=dict(color=LENGTH_COLOR)),
                  row=2, col=1)
    kx, ky = _xy(st.rewards, "kl")
    if kx:
        fig.add_trace(go.Scatter(x=kx, y=ky, name="KL", mode="lines", line=dict(color=KL_COLOR)), row=2, col=1,
                      secondary_y=True)
    ex, ey = _xy(st.rewards, "entropy")  # mean per-token entropy of the sampled answers (nats)
    if ex:
        fig.add_trace(go.Scatter(x=ex, y=ey, name="samples' entropy (nats)", mode="lines",
                                 line=dict(color=ENTROPY_COLOR)), row=3, col=1)
    zx, zy = _xy(st.rewards, "frac_reward_zero_std")  # prompts whose answers all scored the same: advantage 0
    if zx:
        fig.add_trace(go.Scatter(x=zx, y=zy, name="prompts with no signal", mode="lines",
                                 line=dict(color=NO_SIGNAL_COLOR, dash="dot")), row=3, col=1, secondary_y=True)
        fig.update_yaxes(**SHARE_AXIS, tickvals=[0, 0.5, 1], row=3, col=1, secondary_y=True)
    return _layout(fig, st, rows=3, height=560)


def _layout(fig: go.Figure, st: RunStatus, rows: int = 2, height: int = 430) -> go.Figure:
    if st.total_steps:
        fig.update_xaxes(range=[0, st.total_steps + 0.5])
    fig.update_xaxes(title_text="step", row=rows, col=1)
    # t=64: the first subplot title sits below the gr.Plot's label, which covers the top-left ~30 px at any width.
    fig.update_layout(height=height, margin=dict(l=50, r=20, t=64, b=40), legend=dict(orientation="h", y=-0.18),
                      hovermode="x unified")
    return fig


def reward_figure(st: RunStatus) -> go.Figure | None:
    """The method's chart, or None for SFT runs (they have the loss chart only)."""
    if st.method == "dpo":
        return dpo_figure(st)
    if st.method == "grpo":
        return grpo_figure(st)
    return None


def sample_rows(st: RunStatus) -> list[list[str]]:
    """GRPO's sampled answers, newest step first: [step, prompt, answer, reward (per rule)]."""
    rows = []
    for entry in reversed(st.samples):
        for s in entry["samples"]:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in s.get("parts", {}).items())
            rows.append([str(entry["step"]), s["prompt"], s["answer"] or "(empty answer)",
                         f"{s['reward']:.2f}" + (f" ({parts})" if parts else "")])
    return rows


def method_markdown(st: RunStatus) -> str:
    """One line on what the method compares against, under the reward chart."""
    if st.method == "sft":
        return ""
    info = st.method_info
    parts = [f"**{st.method.upper()}**"]
    if info.get("start_adapter"):
        parts.append(f"started from adapter `{html.escape(info['start_adapter'])}`")
    if info.get("reference"):
        parts.append(f"reference model: {html.escape(info['reference'])}")
    if info.get("rewards"):
        parts.append(f"reward = {html.escape(info['rewards'])}")
    last = st.rewards[-1] if st.rewards else {}
    if st.method == "dpo" and last:
        parts.append(f"step {last['step']}: margin {last.get('rewards/margins', 0):.3f}, "
                     f"accuracy {100 * last.get('rewards/accuracies', 0):.0f} %")
    if st.method == "grpo" and last:
        parts.append(f"step {last['step']}: reward {last.get('reward', 0):.3f} ± {last.get('reward_std', 0):.3f}")
        if last.get("frac_reward_zero_std") is not None:
            parts.append(f"{100 * last['frac_reward_zero_std']:.0f} % of the step's prompts gave no reward signal "
                         "(their answers all scored the same)")
    return " · ".join(parts)


def preference_view(cfg: Any, tokenizer: Any, raw: Any, mask_row: Any) -> Any:
    """The Data section's preview for DPO (playground.train.panel.DataPreviewView): pairs side by side."""
    from playground.data.preference import preference_preview
    from playground.train.charts import length_histogram
    from playground.train.panel import DataPreviewView

    m = cfg.tuning
    p = preference_preview(cfg.data, tokenizer, m.max_prompt_length, m.max_completion_length, int(mask_row or 1),
                           cfg.train.seed, raw=raw)
    return DataPreviewView(summary=p["summary"], headers=p["headers"], rows=p["rows"],
                           lengths_figure=length_histogram(p["lengths"], m.max_prompt_length + m.max_completion_length),
                           mask=p["pair"], mask_info=p["info"], columns=p["columns"])


def prompt_tokens(tokenizer: Any, prompt: Any) -> int:
    """A prompt's length as GRPO feeds it to the model (TRL 1.16 GRPOTrainer._tokenize_prompts): chat messages
    (which the run's rows are when it wraps in chat, data.loading.wraps_in_chat) through the chat template with
    the assistant's turn opened, plain text as it is."""
    if isinstance(prompt, list):
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])
        prompt = "\n".join(str(m.get("content") or "") for m in prompt)  # no template: the turns' text
    return len(tokenizer(prompt)["input_ids"])


def prompt_lengths(tokenizer: Any, mapped: Any, limit: int = 500) -> list[int]:
    """Token counts of the first `limit` formatted prompts (data.prompts.format_prompts' rows), as GRPO feeds them."""
    return [prompt_tokens(tokenizer, r["prompt"]) for r in mapped.select(range(min(limit, len(mapped))))]


def prompts_view(cfg: Any, tokenizer: Any, raw: Any) -> Any:
    """The Data section's preview for GRPO: the prompts it will sample answers to, and what the data's own answers
    score under the chosen rewards (a check that the rules reward what you mean)."""
    from playground.data.loading import split_rows
    from playground.data.messages import text_of
    from playground.data.prompts import format_prompts
    from playground.data.reward_rules import rules_from_settings
    from playground.train.charts import length_histogram
    from playground.train.panel import DataPreviewView

    cfg.tuning.validate_rewards()  # a bad reward setting is a sentence naming its field, not a traceback
    mapped, fmt, columns = format_prompts(raw, cfg.data, bool(getattr(tokenizer, "chat_template", None)))
    train, held_out = split_rows(mapped, cfg.data.eval_fraction, cfg.train.seed)
    rules = rules_from_settings(dataclasses.asdict(cfg.tuning))
    rows, scores = [], []
    for i, row in enumerate(mapped.select(range(min(8, len(mapped))))):
        prompt, answer = text_of(row["prompt"]), row["completion"]
        total = sum(w * score(prompt, answer) for _, w, score in rules)
        scores += [total] if answer else []
        rows.append([str(i + 1), prompt, answer or "(none in the data)", f"{total:.2f}" if answer else "—"])
    lengths = prompt_lengths(tokenizer, mapped)
    summary = (f"**{raw.name}**: {len(mapped):,} prompts → **{len(train):,} to train on** / "
               f"**{0 if held_out is None else len(held_out):,} held out** · GRPO samples "
               f"{cfg.tuning.num_generations} answers per prompt · " +
               (f"the data's own answers score {sum(scores) / len(scores):.2f} on average under the rewards shown"
                if scores else "no answers in the data to score (GRPO needs none)"))
    return DataPreviewView(summary=summary, headers=["#", "prompt", "answer in the data", "its reward"], rows=rows,
                           # TRL 1.16's GRPO cuts no prompt (max_completion_length caps the sampled answers)
                           lengths_figure=length_histogram(lengths, None, axis_title="prompt tokens"),
                           mask=[(rows[0][1] if rows else "", None)],
                           mask_info="GRPO trains on the prompts only; the answers are sampled while training.",
                           columns=list(raw.dataset.column_names))
