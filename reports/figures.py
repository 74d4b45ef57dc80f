"""The report's plotly figures, built from a ``ReportContent`` (no HTML here).

Figures are plotly figure specs as plain dicts ({"data": [traces], "layout": {...}}),
serialised by ``plotly.io.to_html(..., validate=False)``: building ``go.Figure`` objects
validates and deep-copies every property and template, which made a 500-run report
spend 9 of its 12 seconds here; the browser test checks that plotly.js draws every
figure without an error instead.

Every interval drawn is a 95% one: for scores Wilson's for accuracies and the value ±
1.96 standard errors for the others, within [0, 1] (``format.interval95``); the
paired-bootstrap interval for comparison deltas. Text reaches plotly as JSON data, which
plotly's encoder escapes (``<``, ``>``, ``/``), so user text cannot close the script.
"""

from __future__ import annotations

from typing import Optional

from plotly.colors import qualitative

from .format import interval95, pvalue, verdict

PALETTE = qualitative.Plotly + qualitative.D3
STAGE_BANDS = ("rgba(99,110,250,0.07)", "rgba(0,0,0,0)")
MAX_LINES = 6          # progression lines drawn at first; more: groups and average only
MAX_ERROR_BARS = 30    # checkpoints of a base model up to which progression shows error bars
MAX_TICKS = 40         # step labels on a progression axis
# lines that coincide (two tasks with equal scores) stay apart by marker and dash
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
# light for low, dark for high (plotly's named "Blues" runs the other way: dark blue at 0)
HEAT_SCALE = [[0.0, "#f7fbff"], [0.25, "#c6dbef"], [0.5, "#6baed6"], [0.75, "#2171b5"], [1.0, "#08306b"]]
VERDICT_COLORS = {"better": "#2ca02c", "worse": "#d62728", "no significant change": "#7f7f7f"}
AXIS = {"gridcolor": "#ebebeb", "zerolinecolor": "#d0d0d0", "linecolor": "#d0d0d0", "automargin": True}


def _error_bars(points: list[tuple], visible: bool = True, thickness: float = 1.2) -> dict:
    """plotly's ``error_y`` of (value, stderr, n, metric) points: each point's 95% interval
    (``format.interval95``: Wilson's for accuracies, within [0, 1]), so asymmetric."""
    bounds = [interval95(*p) for p in points]
    return {"type": "data", "symmetric": False, "visible": visible, "thickness": thickness,
            "array": [b[1] - p[0] if b else 0.0 for p, b in zip(points, bounds)],
            "arrayminus": [p[0] - b[0] if b else 0.0 for p, b in zip(points, bounds)]}


def _interval_text(point: tuple) -> str:
    b = interval95(*point)
    return f"[{b[0]:.4f}, {b[1]:.4f}]" if b else "–"


def _figure(traces: list[dict], title: str, height: int, **layout) -> dict:
    """A figure spec in the report's look (white, light grid: plotly's ``plotly_white``)."""
    spec = {"title": {"text": title, "x": 0.01, "font": {"size": 15}}, "height": height,
            "margin": {"l": 60, "r": 20, "t": 50, "b": 60}, "paper_bgcolor": "white", "plot_bgcolor": "white",
            "colorway": PALETTE, "font": {"size": 12}, "hoverlabel": {"align": "left"}}
    for axis in ("xaxis", "yaxis"):
        spec[axis] = {**AXIS, **layout.pop(axis, {})}
    spec.update(layout)
    return {"data": traces, "layout": spec}


def base_model_colors(rows: list) -> dict[str, str]:
    names = sorted({r.base_model for r in rows})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def task_bars(content) -> list[tuple[str, dict]]:
    """One bar chart a task: the shown checkpoints' scores with their 95% intervals."""
    colors = base_model_colors(content.board.rows)
    figures = []
    for task in content.board.tasks:
        rows = [r for r in content.shown if r.scores.get(task) and r.scores[task][0] is not None]
        if not rows:
            continue
        metric = content.main_metric.get(task, "")
        points = [(r.scores[task][0], r.scores[task][1], r.counts.get(task), r.scores[task][2]) for r in rows]
        bar = {"type": "bar", "x": [content.labels[r.run_id] + (" ★" if r.best_in_stage else "") for r in rows],
               "y": [r.scores[task][0] for r in rows],
               "error_y": _error_bars(points),
               "marker": {"color": [colors[r.base_model] for r in rows]},
               "customdata": [[r.run_id, _interval_text(p)] for r, p in zip(rows, points)],
               "hovertemplate": "%{x}<br>" + metric + " %{y:.4f} %{customdata[1]}<br>run %{customdata[0]}"
                                "<extra></extra>"}
        figures.append((task, _figure([bar], f"{task} · {metric} (95% interval)", 360,
                                      yaxis={"title": {"text": metric}, "rangemode": "tozero"},
                                      xaxis={"tickangle": -30})))
    return figures


def progression_figures(content) -> list[tuple[str, dict]]:
    """One figure a base model: score against training step, stage after stage.

    Steps restart at every stage, so the x axis is the checkpoint's position in stage
    order; ticks name the step, shaded bands name the stage. With many lines only the
    groups (the suite among them) and the average are drawn at first (the legend toggles the rest), and
    with many checkpoints the error bars and most tick labels are left out, so that the
    chart stays readable.
    """
    groups = set(content.board.groups) | {"average"}
    by_model: dict[str, list[dict]] = {}
    for p in content.progression:
        by_model.setdefault(p["base_model"], []).append(p)
    figures = []
    for model, points in by_model.items():
        positions: dict[tuple, int] = {}
        for p in points:  # progression() orders them stage after stage, step after step
            positions.setdefault(_key(p), len(positions))
        traces = []
        tasks = list(dict.fromkeys(p["task"] for p in points))
        few_lines = len(tasks) <= MAX_LINES or not groups & set(tasks)
        bars = len(positions) <= MAX_ERROR_BARS
        for i, task in enumerate(tasks):
            pts = sorted((p for p in points if p["task"] == task and p["value"] is not None),
                         key=lambda p: positions[_key(p)])
            if not pts:
                continue
            traces.append({
                "type": "scatter", "mode": "lines+markers", "name": f"{task} ({pts[0]['metric']})",
                "x": [positions[_key(p)] for p in pts], "y": [p["value"] for p in pts],
                "line": {"color": PALETTE[i % len(PALETTE)], "dash": DASHES[i % len(DASHES)], "width": 2},
                "marker": {"symbol": SYMBOLS[i % len(SYMBOLS)], "size": 8 if len(pts) <= MAX_ERROR_BARS else 5},
                "visible": True if few_lines or task in groups else "legendonly",
                "error_y": _error_bars([(p["value"], p["stderr"], p.get("n"), p["metric"]) for p in pts],
                                       visible=bars, thickness=0.8),
                "customdata": [[p["stage"], "–" if p["step"] is None else p["step"], p["checkpoint"]] for p in pts],
                "hovertemplate": "%{customdata[0]} step %{customdata[1]}<br>%{y:.4f}<br>%{customdata[2]}"
                                 "<extra>" + task + "</extra>"})
        spans: dict[str, list[int]] = {}
        for key, pos in positions.items():
            spans.setdefault(key[1], []).append(pos)
        shapes, notes = [], []
        for j, (stage, pos) in enumerate(spans.items()):
            shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": min(pos) - 0.5, "x1": max(pos) + 0.5,
                           "y0": 0, "y1": 1, "fillcolor": STAGE_BANDS[j % 2], "line": {"width": 0}, "layer": "below"})
            notes.append({"xref": "x", "yref": "paper", "x": min(pos) - 0.45, "y": 1 - 0.06 * (j % 2),
                          "text": stage, "showarrow": False, "xanchor": "left", "yanchor": "top"})
        keys = list(positions)
        every = -(-len(keys) // MAX_TICKS)  # label one tick in this many
        figures.append((model, _figure(
            traces, f"{model}: stage progression", 420, shapes=shapes, annotations=notes,
            xaxis={"title": {"text": "training step (stage after stage)"}, "tickmode": "array",
                   "tickvals": list(range(0, len(keys), every)),
                   "ticktext": ["–" if k[2] is None else str(k[2]) for k in keys[::every]]},
            yaxis={"title": {"text": "score"}}, legend={"orientation": "h", "y": -0.25})))
    return figures


def _key(p: dict) -> tuple:
    return (p["stage_index"], p["stage"], p["step"], p["checkpoint"])


def category_heatmaps(content) -> list[tuple[str, dict]]:
    """One heatmap a (task, category column): categories down, shown checkpoints across,
    the task's main metric in the cells."""
    cells: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
    for run_id, rows in content.categories.items():
        for c in rows:
            if c["metric"] == content.main_metric[c["task"]]:
                cells.setdefault((c["task"], c["column"]), {})[(c["category"], run_id)] = c
    figures = []
    for (task, column), grid in sorted(cells.items()):
        categories = sorted({cat for cat, _ in grid})
        runs = [r.run_id for r in content.shown if any(run == r.run_id for _, run in grid)]
        z = [[grid.get((cat, run), {}).get("value") for run in runs] for cat in categories]
        top = max((v for row in z for v in row if v is not None), default=1.0)
        metric = next(iter(grid.values()))["metric"]
        heat = {"type": "heatmap", "z": z, "x": [content.labels[r] for r in runs], "y": categories,
                "text": [["" if v is None else f"{v:.2f}" for v in row] for row in z], "texttemplate": "%{text}",
                "customdata": [[grid.get((cat, run), {}).get("n") for run in runs] for cat in categories],
                "colorscale": HEAT_SCALE, "zmin": 0, "zmax": max(1.0, top),
                "colorbar": {"title": {"text": metric}, "thickness": 12},
                "hovertemplate": "%{y}<br>%{x}<br>" + metric + " %{z:.4f} (n=%{customdata})<extra></extra>"}
        figures.append((f"{task} · {column}", _figure(
            [heat], f"{task} · {column} · {metric}", max(260, 26 * len(categories) + 140),
            # category axes: a difficulty level "1".."5" is a name here, not a number to space out
            xaxis={"tickangle": -30, "gridcolor": "rgba(0,0,0,0)", "type": "category"},
            yaxis={"autorange": "reversed", "gridcolor": "rgba(0,0,0,0)", "type": "category"})))
    return figures


def comparison_forest(comparison: dict) -> Optional[dict]:
    """Each task and metric's delta (B - A) with its 95% paired-bootstrap interval."""
    metrics = [m for m in comparison.get("metrics", []) if m.get("delta") is not None]
    if not metrics:
        return None

    # one trace a verdict, each with one colour for its markers and its error bars: plotly
    # takes an error bar's colour from the marker's, and a per-point colour list is not one
    # colour ("Invalid color specifier" in the console, black bars)
    dots = []
    for name, colour in VERDICT_COLORS.items():
        these = [m for m in metrics if verdict(m) == name]
        if not these:
            continue
        dots.append({
            "type": "scatter", "mode": "markers", "name": name, "x": [m["delta"] for m in these],
            "y": [f"{m['task']} · {m['metric']}" for m in these], "marker": {"size": 9, "color": colour},
            "error_x": {"type": "data", "symmetric": False, "visible": True, "color": colour, "thickness": 1.5,
                        "array": [m["ci_high"] - m["delta"] if m.get("ci_high") is not None else 0 for m in these],
                        "arrayminus": [m["delta"] - m["ci_low"] if m.get("ci_low") is not None else 0
                                       for m in these]},
            "customdata": [[pvalue(m.get("p_value")), m.get("test"), m.get("n")] for m in these],
            "hovertemplate": "%{y}<br>Δ %{x:.4f}<br>p %{customdata[0]} (%{customdata[1]}, n=%{customdata[2]})"
                             "<extra>" + name + "</extra>"})
    order = [f"{m['task']} · {m['metric']}" for m in metrics]
    zero = {"type": "line", "xref": "x", "yref": "paper", "x0": 0, "x1": 0, "y0": 0, "y1": 1,
            "line": {"dash": "dash", "color": "#444"}}
    return _figure(dots, "Δ = B − A with 95% paired-bootstrap intervals (green: significantly better, "
                         "red: significantly worse)", max(260, 28 * len(metrics) + 120), shapes=[zero],
                   xaxis={"title": {"text": "delta"}, "zeroline": False},
                   yaxis={"autorange": "reversed", "categoryorder": "array", "categoryarray": order},
                   legend={"orientation": "h", "y": -0.2})

