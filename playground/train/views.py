"""Text views of a run for the Train tab: status line, progress bar, probe timeline (Gradio-free)."""

from __future__ import annotations

import html

from playground.train.status import RunStatus

STATE_ICONS = {"starting": "⏳", "loading": "⏳", "training": "🏃", "stopping": "✋", "saving": "💾",
               "completed": "✅", "stopped": "⏹️", "failed": "❌", "interrupted": "⚠️", "idle": "💤"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_markdown(st: RunStatus) -> str:
    """One or two lines: state, run, adapter, message."""
    if st.state == "idle":
        return "💤 No training run yet. Pick a recipe or your data, then **Start training**."
    icon = STATE_ICONS.get(st.state, "")
    parts = [f"{icon} **{st.state}** · run `{st.run_id}`"]
    if st.adapter:
        parts.append(f"adapter **`{st.adapter}`** saved (see the Adapters / Compare tabs)")
    if st.trainable_params:
        parts.append(f"{st.trainable_params:,} trainable parameters")
    if st.train_rows is not None:
        parts.append(f"{st.train_rows} train / {st.eval_rows or 0} eval rows")
    if st.device:
        parts.append(f"{st.device} · {st.precision or 'fp32'}")
    line = " · ".join(parts)
    if st.message:
        line += f"\n\n{st.message}"
    if st.resumable:
        line += f"\n\nA checkpoint at step {st.last_checkpoint} exists: **Resume** continues from it."
    return line


def progress_html(st: RunStatus) -> str:
    """A progress bar with step/total, elapsed, ETA, tokens/s and peak memory."""
    total = st.total_steps or 0
    frac = min(1.0, st.step / total) if total else (1.0 if st.state == "completed" else 0.0)
    color = {"failed": "#dc2626", "interrupted": "#d97706", "stopped": "#6b7280"}.get(st.state, "#2563eb")
    facts = [f"step <b>{st.step}</b> / {total or '?'}", f"elapsed {format_duration(st.elapsed_s)}"]
    if st.active and st.eta_s is not None and st.state not in ("stopping", "saving"):  # no ETA while winding down
        facts.append(f"ETA {format_duration(st.eta_s)}")
    if st.tokens_per_s:
        facts.append(f"{st.tokens_per_s:,.0f} tokens/s")
    if st.peak_mem_mb:
        facts.append(f"peak memory {st.peak_mem_mb / 1024:.2f} GiB" if st.peak_mem_mb >= 1024
                     else f"peak memory {st.peak_mem_mb:.0f} MiB")
    if st.losses:
        facts.append(f"loss {st.losses[-1]['loss']:.4f}")
    if st.evals:
        facts.append(f"eval loss {st.evals[-1]['eval_loss']:.4f}")
    return (f'<div id="train-progress-bar" data-step="{st.step}" data-total="{total}" data-state="{st.state}" '
            'style="width:100%;background:var(--background-fill-secondary);border-radius:6px;height:14px;'
            'overflow:hidden;border:1px solid var(--border-color-primary)">'
            f'<div style="width:{100 * frac:.1f}%;height:100%;background:{color};transition:width .5s"></div></div>'
            f'<div style="font-size:13px;margin-top:4px">{" · ".join(facts)}</div>')


def probe_rows(st: RunStatus) -> list[list[str]]:
    """Probe timeline, newest first: [step, answer]."""
    return [[str(p["step"]), p["answer"] or "(empty answer)"] for p in reversed(st.probes)]


def probe_header(st: RunStatus) -> str:
    if not st.probe_prompt:
        return "**Live probe**: the model's answer to a fixed prompt, every few steps."
    return f"**Live probe** — prompt: _{html.escape(st.probe_prompt)}_"
