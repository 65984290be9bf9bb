"""Charts and text views of a run (pure functions: no model, no process)."""

from __future__ import annotations

import math

from playground.adapters.charts import smooth
from playground.train.charts import length_histogram, loss_figure
from playground.train.status import RunStatus
from playground.train.views import format_duration, probe_rows, progress_html, status_markdown

LOSSES = [{"step": s, "loss": 3.0 / s, "learning_rate": 1e-3 * (1 - s / 10), "grad_norm": 1.0 + s} for s in range(1, 6)]
EVALS = [{"step": 2, "eval_loss": 1.7}, {"step": 4, "eval_loss": 1.1}]


def trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_loss_figure_has_every_series_on_its_axis():
    fig = loss_figure(LOSSES, EVALS, overlays={"old-run": LOSSES[:3]}, total_steps=10)
    assert list(trace(fig, "train loss").x) == [1, 2, 3, 4, 5]
    assert list(trace(fig, "eval loss").y) == [1.7, 1.1]
    assert trace(fig, "learning rate").yaxis == "y2"  # the second axis of the top panel
    assert trace(fig, "grad norm").yaxis == "y3" and list(trace(fig, "grad norm").y) == [2, 3, 4, 5, 6]
    assert len(trace(fig, "old-run (earlier run)").x) == 3
    smoothed = list(trace(fig, "train loss (smoothed)").y)
    assert smoothed[0] == 3.0 and smoothed[-1] > LOSSES[-1]["loss"]  # debiased EMA lags a falling loss
    assert fig.layout.yaxis.type == "linear"
    assert loss_figure(LOSSES, EVALS, log_scale=True).layout.yaxis.type == "log"


def test_nan_points_are_left_out_and_empty_chart_says_so():
    fig = loss_figure(LOSSES + [{"step": 6, "loss": float("nan"), "learning_rate": 0, "grad_norm": None}], [])
    assert list(trace(fig, "train loss").x) == [1, 2, 3, 4, 5, 6][:5]
    empty = loss_figure([], [])
    assert "Start a run" in empty.layout.annotations[0].text


def test_smooth_is_debiased_ema():
    assert all(math.isclose(v, 2.0) for v in smooth([2.0, 2.0, 2.0]))
    out = smooth([4.0, 0.0], weight=0.5)
    assert out[0] == 4.0 and math.isclose(out[1], (0.5 * 2.0) / 0.75)


def test_length_histogram_marks_the_cut():
    fig = length_histogram([10, 20, 30, 200, 300], max_length=128)
    assert list(fig.data[0].x) == [10, 20, 30, 200, 300]
    assert fig.layout.shapes[0].x0 == 128 and "2 rows truncated" in fig.layout.annotations[0].text


def test_length_histogram_bars_fill_the_plot_whatever_the_max_length():
    lengths = [41, 44, 44, 47, 52, 58, 58, 63, 70, 71]  # short chat rows; max length 256 is far to the right
    fig = length_histogram(lengths, max_length=256)
    lo, hi = fig.layout.xaxis.range
    bins = fig.data[0].xbins
    assert (lo, hi) == (41, 73) and (bins.start, bins.end, bins.size) == (41, 73, 4)  # 8 bins of 4 tokens
    assert lo <= min(lengths) and max(lengths) < hi and (hi - lo) <= 1.1 * (max(lengths) - min(lengths) + 1)
    assert not fig.layout.shapes  # the cut is off the data: a note instead of stretching the axis to 256
    assert fig.layout.annotations[0].text == "max length 256 (0 rows truncated)"
    wide = length_histogram(list(range(10, 410, 5)), max_length=128)  # 80 distinct lengths -> 40 bins of 10
    assert (wide.data[0].xbins.size, tuple(wide.layout.xaxis.range)) == (10, (10, 410))
    assert wide.layout.shapes[0].x0 == 128 and "56 rows truncated" in wide.layout.annotations[0].text
    single = length_histogram([12, 12], max_length=8)
    assert tuple(single.layout.xaxis.range) == (12, 13) and "2 rows truncated" in single.layout.annotations[0].text


def test_progress_status_and_probe_timeline():
    st = RunStatus(run_id="r1", state="training", step=25, total_steps=100, elapsed_s=75, eta_s=225,
                   tokens_per_s=812.4, peak_mem_mb=1700, losses=[{"step": 25, "loss": 1.23456}],
                   probes=[{"step": 0, "answer": "base"}, {"step": 10, "answer": ""}], trainable_params=4096,
                   train_rows=624, eval_rows=70, device="cuda", precision="bf16")
    html = progress_html(st)
    assert 'data-step="25"' in html and "width:25.0%" in html and "ETA 3:45" in html and "812 tokens/s" in html
    assert "peak memory 1.66 GiB" in html and "loss 1.2346" in html
    assert probe_rows(st) == [["10", "(empty answer)"], ["0", "base"]]
    md = status_markdown(st)
    assert "**training**" in md and "4,096 trainable parameters" in md and "624 train / 70 eval" in md
    assert "cuda · bf16" in md
    done = RunStatus(run_id="r1", state="interrupted", resumable=True, last_checkpoint=20)
    assert "checkpoint at step 20" in status_markdown(done)
    assert format_duration(3725) == "1:02:05" and format_duration(None) == "–"


def test_progress_shows_no_eta_while_the_run_stops_or_saves():
    for state in ("stopping", "saving"):  # an eta_s from a status built before the stop: still not shown
        st = RunStatus(run_id="r1", state=state, step=25, total_steps=100, elapsed_s=75, eta_s=225)
        assert "ETA" not in progress_html(st) and "step <b>25</b> / 100" in progress_html(st)
    assert "ETA 3:45" in progress_html(RunStatus(run_id="r1", state="training", step=25, total_steps=100, eta_s=225))


def test_grpo_prompt_lengths_have_no_cap_line():
    fig = length_histogram([10, 20, 30, 40], None, axis_title="prompt tokens")
    assert fig.layout.xaxis.title.text == "prompt tokens" and not fig.layout.shapes and not fig.layout.annotations
