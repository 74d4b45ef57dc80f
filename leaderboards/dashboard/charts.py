"""The dashboard's plotly figures; pure functions of query results (no streamlit)."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from aimed.harness.stats import score_interval95

# lines that coincide stay apart by marker and dash
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def progression_figure(rows: list[dict], task: str) -> go.Figure:
    """Score against training step for one task, stage after stage: one panel a stage (in
    training order, as ``query.progression`` numbers them), one line a base model, the
    same colour in every panel; error bars are 95% intervals (Wilson's for accuracies)."""
    rows = [r for r in rows if r["task"] == task and r.get("value") is not None]
    stages = sorted({(r["stage_index"], r["stage"]) for r in rows})
    bases = sorted({r["base_model"] for r in rows})
    colour = {b: qualitative.Plotly[i % len(qualitative.Plotly)] for i, b in enumerate(bases)}
    style = {b: i for i, b in enumerate(bases)}
    fig = make_subplots(rows=1, cols=max(1, len(stages)), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[s for _, s in stages] or [task])
    lines: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        lines[(r["stage_index"], r["stage"], r["base_model"])].append(r)
    for col, stage in enumerate(stages, start=1):
        for base in bases:
            points = sorted(lines.get((*stage, base), []), key=lambda r: (r.get("step") or 0))
            if not points:
                continue
            fig.add_trace(go.Scatter(
                x=[p.get("step") or 0 for p in points], y=[p["value"] for p in points],
                error_y=_error_bars(points),
                mode="lines+markers", name=base, legendgroup=base, showlegend=col == 1,
                line=dict(color=colour[base], dash=DASHES[style[base] % len(DASHES)]),
                marker=dict(symbol=SYMBOLS[style[base] % len(SYMBOLS)], size=8),
                text=[p["checkpoint"] for p in points],
                hovertemplate="%{text}<br>step %{x}<br>%{y:.4f}<extra>" + base + "</extra>"),
                row=1, col=col)
        # whole steps only: the checkpoints' own steps as ticks (no "2.5"), or integer ticks when many
        steps = sorted({p.get("step") or 0 for (i, s_, _), pts in lines.items() if (i, s_) == stage for p in pts})
        ticks = dict(tickmode="array", tickvals=steps) if len(steps) <= 12 else dict(tickformat="d")
        fig.update_xaxes(title_text="step", row=1, col=col, **ticks)
    metric = rows[0]["metric"] if rows else ""
    fig.update_yaxes(title_text=f"{task} ({metric})", row=1, col=1)
    fig.update_layout(height=420, margin=dict(l=40, r=10, t=40, b=40), legend_title_text="base model")
    return fig


def _error_bars(points: list[dict]) -> dict:
    """Each point's 95% interval as plotly error bars: Wilson's for accuracies, value ±
    1.96 standard errors for the other scores, within [0, 1] (as the HTML report draws)."""
    bounds = [score_interval95(p.get("value"), p.get("stderr"), p.get("n"), p.get("metric", "")) for p in points]
    return dict(type="data", symmetric=False, thickness=1,
                array=[b[1] - p["value"] if b else 0 for p, b in zip(points, bounds)],
                arrayminus=[p["value"] - b[0] if b else 0 for p, b in zip(points, bounds)])


def category_figure(rows: list[dict], title: str) -> go.Figure:
    """Per-category scores of one annotation column, with 95% interval bars; the
    category's item count in its label, since small categories swing widely."""
    rows = sorted(rows, key=lambda r: (r.get("value") is None, r.get("value") or 0))
    fig = go.Figure(go.Bar(
        x=[r.get("value") for r in rows], y=[f"{r['category']} (n={r.get('n')})" for r in rows],
        orientation="h", error_x=_error_bars(rows)))
    fig.update_layout(title=title, height=max(240, 26 * len(rows) + 80), margin=dict(l=10, r=10, t=40, b=30),
                      xaxis_title=rows[0]["metric"] if rows else "")
    return fig


def delta_figure(metrics: list[dict]) -> go.Figure:
    """Each task and metric's difference (B - A) with its paired-bootstrap interval;
    significant differences in colour."""
    # one trace a verdict with one colour for markers and error bars (plotly colours error
    # bars like the marker, and a per-point colour list is no colour: "Invalid color specifier")
    fig = go.Figure()
    order = [f"{m['task']} · {m['metric']}" for m in metrics]
    for name, colour in (("significantly worse", "#d62728"), ("significantly better", "#2ca02c"),
                         ("no significant change", "#7f7f7f")):
        these = [m for m in metrics if _kind(m) == name]
        if these:
            fig.add_trace(go.Scatter(
                x=[m["delta"] for m in these], y=[f"{m['task']} · {m['metric']}" for m in these], mode="markers",
                name=name, marker=dict(color=colour, size=9),
                error_x=dict(type="data", symmetric=False, color=colour,
                             array=[_gap(m.get("ci_high"), m["delta"]) for m in these],
                             arrayminus=[_gap(m["delta"], m.get("ci_low")) for m in these])))
    fig.update_yaxes(categoryorder="array", categoryarray=order, autorange="reversed")
    fig.add_vline(x=0, line_dash="dot", line_color="#999")
    fig.update_layout(height=max(240, 28 * len(metrics) + 80), margin=dict(l=10, r=10, t=30, b=30),
                      xaxis_title="B - A (95% interval)")
    return fig


def _kind(m: dict) -> str:
    if not m.get("significant"):
        return "no significant change"
    return "significantly worse" if _worse(m) else "significantly better"


def _worse(m: dict) -> bool:
    return (m["delta"] < 0) == bool(m.get("higher_is_better", True))


def _gap(hi, lo) -> float:
    return 0.0 if hi is None or lo is None else max(0.0, hi - lo)
