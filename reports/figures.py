"""The report's plotly figures, built from a ``ReportContent`` (no HTML here).

Every interval drawn is a 95% one: the value ± 1.96 standard errors for scores, the
paired-bootstrap interval for comparison deltas. Text reaches plotly as data, and
plotly's JSON escapes ``<``, ``>`` and ``/``, so user text cannot close the script.
"""

from __future__ import annotations

from typing import Optional

import plotly.graph_objects as go
from plotly.colors import qualitative

from .format import Z95

PALETTE = qualitative.Plotly + qualitative.D3
STAGE_BANDS = ("rgba(99,110,250,0.07)", "rgba(0,0,0,0)")


def _ci(se: Optional[float]) -> float:
    return Z95 * se if se is not None else 0.0


def _layout(fig: go.Figure, title: str, height: int, **extra) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), height=height,
                      template="plotly_white", margin=dict(l=60, r=20, t=50, b=60), **extra)
    return fig


def base_model_colors(rows: list) -> dict[str, str]:
    names = sorted({r.base_model for r in rows})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def task_bars(content) -> list[tuple[str, go.Figure]]:
    """One bar chart a task: the shown checkpoints' scores with their 95% intervals."""
    colors = base_model_colors(content.board.rows)
    figures = []
    for task in content.board.tasks:
        rows = [r for r in content.shown if r.scores.get(task) and r.scores[task][0] is not None]
        if not rows:
            continue
        metric = content.main_metric.get(task, "")
        labels = [content.labels[r.run_id] + (" ★" if r.best_in_stage else "") for r in rows]
        values = [r.scores[task][0] for r in rows]
        errors = [_ci(r.scores[task][1]) for r in rows]
        fig = go.Figure(go.Bar(
            x=labels, y=values, error_y=dict(type="data", array=errors, visible=True, thickness=1.2),
            marker_color=[colors[r.base_model] for r in rows],
            customdata=[[r.run_id, e] for r, e in zip(rows, errors)],
            hovertemplate="%{x}<br>" + metric + " %{y:.4f} ± %{customdata[1]:.4f}<br>run %{customdata[0]}"
                          "<extra></extra>"))
        figures.append((task, _layout(fig, f"{task} · {metric} (95% interval)", 360,
                                      yaxis=dict(title=metric, rangemode="tozero"),
                                      xaxis=dict(tickangle=-30, automargin=True))))
    return figures


def progression_figures(content) -> list[tuple[str, go.Figure]]:
    """One figure a base model: score against training step, stage after stage.

    Steps restart at every stage, so the x axis is the checkpoint's position in stage
    order; ticks name the step, shaded bands name the stage.
    """
    by_model: dict[str, list[dict]] = {}
    for p in content.progression:
        by_model.setdefault(p["base_model"], []).append(p)
    figures = []
    for model, points in by_model.items():
        positions: dict[tuple, int] = {}
        for p in points:  # progression() orders them stage after stage, step after step
            positions.setdefault((p["stage_index"], p["stage"], p["step"], p["checkpoint"]), len(positions))
        fig = go.Figure()
        tasks = list(dict.fromkeys(p["task"] for p in points))
        for i, task in enumerate(tasks):
            pts = sorted((p for p in points if p["task"] == task and p["value"] is not None),
                         key=lambda p: positions[(p["stage_index"], p["stage"], p["step"], p["checkpoint"])])
            fig.add_trace(go.Scatter(
                x=[positions[(p["stage_index"], p["stage"], p["step"], p["checkpoint"])] for p in pts],
                y=[p["value"] for p in pts], mode="lines+markers", name=f"{task} ({pts[0]['metric'] if pts else ''})",
                line=dict(color=PALETTE[i % len(PALETTE)]),
                error_y=dict(type="data", array=[_ci(p["stderr"]) for p in pts], visible=True, thickness=0.8),
                customdata=[[p["stage"], p["step"] if p["step"] is not None else "–", p["checkpoint"]] for p in pts],
                hovertemplate="%{customdata[0]} step %{customdata[1]}<br>%{y:.4f}<br>%{customdata[2]}"
                              "<extra>" + task + "</extra>"))
        keys = list(positions)
        spans: dict[str, list[int]] = {}
        for key, pos in positions.items():
            spans.setdefault(key[1], []).append(pos)
        for j, (stage, pos) in enumerate(spans.items()):
            fig.add_vrect(x0=min(pos) - 0.5, x1=max(pos) + 0.5, fillcolor=STAGE_BANDS[j % 2], line_width=0,
                          layer="below", annotation_text=stage, annotation_position="top left")
        fig.update_xaxes(tickmode="array", tickvals=list(range(len(keys))),
                         ticktext=[str(k[2]) if k[2] is not None else "–" for k in keys], title="training step")
        figures.append((model, _layout(fig, f"{model}: stage progression", 420,
                                       yaxis=dict(title="score"), legend=dict(orientation="h", y=-0.25))))
    return figures


def category_heatmaps(content) -> list[tuple[str, go.Figure]]:
    """One heatmap a (task, category column): categories down, shown checkpoints across,
    the task's main metric in the cells."""
    cells: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
    for run_id, rows in content.categories.items():
        for c in rows:
            metric = content.main_metric.get(c["task"]) or c["metric"]
            if c["metric"] == metric:
                cells.setdefault((c["task"], c["column"]), {})[(c["category"], run_id)] = c
    figures = []
    for (task, column), grid in sorted(cells.items()):
        categories = sorted({cat for cat, _ in grid})
        runs = [r.run_id for r in content.shown if any(run == r.run_id for _, run in grid)]
        z = [[grid.get((cat, run), {}).get("value") for run in runs] for cat in categories]
        n = [[grid.get((cat, run), {}).get("n") for run in runs] for cat in categories]
        text = [[f"{v:.2f}" if v is not None else "" for v in row] for row in z]
        metric = next(iter(grid.values()))["metric"]
        fig = go.Figure(go.Heatmap(
            z=z, x=[content.labels[r] for r in runs], y=categories, text=text, texttemplate="%{text}",
            customdata=n, colorscale="Blues", zmin=0, zmax=max(1.0, max((v for row in z for v in row if v is not None),
                                                                       default=1.0)),
            hovertemplate="%{y}<br>%{x}<br>" + metric + " %{z:.4f} (n=%{customdata})<extra></extra>"))
        height = max(260, 26 * len(categories) + 140)
        figures.append((f"{task} · {column}", _layout(fig, f"{task} · {column} · {metric}", height,
                                                      xaxis=dict(tickangle=-30, automargin=True),
                                                      yaxis=dict(automargin=True, autorange="reversed"))))
    return figures


def comparison_forest(comparison: dict) -> Optional[go.Figure]:
    """Each task and metric's delta (B - A) with its 95% paired-bootstrap interval."""
    metrics = [m for m in comparison.get("metrics", []) if m.get("delta") is not None]
    if not metrics:
        return None
    labels = [f"{m['task']} · {m['metric']}" for m in metrics]
    lo = [m["delta"] - m["ci_low"] if m.get("ci_low") is not None else 0 for m in metrics]
    hi = [m["ci_high"] - m["delta"] if m.get("ci_high") is not None else 0 for m in metrics]

    def color(m: dict) -> str:
        if not m.get("significant"):
            return "#7f7f7f"
        better = (m["delta"] > 0) == bool(m.get("higher_is_better", True))
        return "#2ca02c" if better else "#d62728"

    fig = go.Figure(go.Scatter(
        x=[m["delta"] for m in metrics], y=labels, mode="markers",
        marker=dict(size=9, color=[color(m) for m in metrics]),
        error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo, visible=True),
        customdata=[[m.get("p_value"), m.get("test"), m.get("n")] for m in metrics],
        hovertemplate="%{y}<br>Δ %{x:.4f}<br>p %{customdata[0]:.4g} (%{customdata[1]}, n=%{customdata[2]})"
                      "<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="#444")
    return _layout(fig, "Δ = B − A with 95% paired-bootstrap intervals (green: significantly better, "
                        "red: significantly worse)", max(260, 28 * len(metrics) + 120),
                   xaxis=dict(title="delta", zeroline=False), yaxis=dict(automargin=True, autorange="reversed"))
