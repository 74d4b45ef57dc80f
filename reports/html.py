"""The report as one self-contained HTML file: plotly.js inlined once in the head, every
chart a ``Plotly.newPlot`` call on it, no link to any other file or host, so the page
works offline and can be mailed or attached to a CI run as it is.

Every piece of text that comes from the index or a run (model names, task names,
questions, outputs) is HTML-escaped here; chart data is escaped by plotly's JSON.
"""

from __future__ import annotations

from html import escape

import plotly.io as pio
from plotly.offline import get_plotlyjs

from . import figures
from . import format as fmt
from .collect import ReportContent

CONFIG = {"displaylogo": False, "responsive": True}

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC",sans-serif;margin:0 auto;
max-width:1400px;padding:0 24px 48px;color:#222}
h1{margin:24px 0 4px}h2{margin-top:40px;border-bottom:2px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:14px}.note{color:#444;font-size:14px;margin:6px 0 12px}
nav a{margin-right:14px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f6;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.best td{background:#fff6d6;font-weight:600}
.scroll{overflow-x:auto;max-height:640px;overflow-y:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.chart{border:1px solid #eee;border-radius:6px;padding:4px}
td.better{color:#1a7f1a;font-weight:600}td.worse{color:#c0392b;font-weight:600}
td.verdict span{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;white-space:nowrap}
td.v-promoted span{background:#dff3df;color:#1a6b1a}td.v-reward-model span{background:#e3ecfb;color:#1f4e9c}
td.v-not-promoted span{background:#fdf0d5;color:#8a5a00}td.v-failed span{background:#fbe1de;color:#a8261b}
"""


class _Charts:
    """Numbers the chart divs and renders each as a div + script with no plotly.js."""

    def __init__(self):
        self.count = 0

    def div(self, fig: dict) -> str:
        self.count += 1
        height = int(fig["layout"].get("height") or 400)
        body = pio.to_html(fig, full_html=False, include_plotlyjs=False, config=CONFIG, validate=False,
                           div_id=f"chart-{self.count}", default_height=f"{height}px")
        return f'<div class="chart">{body}</div>'


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
           numeric: set[int] = frozenset(), cell_classes: list[dict[int, str]] | None = None,
           badges: list[dict[int, str]] | None = None) -> str:
    """``badges``: the cells (row, column) whose text is drawn as a badge (a span the CSS styles)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, cells in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        tds = []
        for j, cell in enumerate(cells):
            classes = (["num"] if j in numeric else []) + ([cell_classes[i][j]] if cell_classes and j in
                                                             cell_classes[i] else [])
            attr = f' class="{" ".join(classes)}"' if classes else ""
            text = f"<span>{escape(cell)}</span>" if badges and j in badges[i] else escape(cell)
            tds.append(f"<td{attr}>{text}</td>")
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def leaderboard_section(c: ReportContent) -> str:
    tasks = c.board.tasks
    rows = c.board.rows
    header = fmt.leaderboard_header(tasks, c.main_metric)
    numeric = set(range(7, len(header)))
    return _section("leaderboard", "Leaderboard",
                    _note(f"{len(rows)} checkpoints (each its latest run); ★ marks the best checkpoint of each "
                          "base model and stage by suite average; scores are value [95% interval]; "
                          f"{fmt.INTERVAL_NOTE}."),
                    _table(header, [fmt.leaderboard_cells(r, tasks) for r in rows],
                           ["best" if r.best_in_stage else "" for r in rows], numeric))


def _grid(charts: _Charts, figs: list) -> str:
    return '<div class="grid">' + "".join(charts.div(f) for _, f in figs) + "</div>"


def tasks_section(c: ReportContent, charts: _Charts) -> str:
    figs = figures.task_bars(c)
    return _section("tasks", "Scores by task",
                    _note(f"Bars: {c.shown_note}; error bars: {fmt.INTERVAL_NOTE}; "
                          "★ marks the best of its stage."),
                    _grid(charts, figs) if figs else _note("No task has scores for these checkpoints."))


def progression_section(c: ReportContent, charts: _Charts) -> str:
    figs = figures.progression_figures(c)
    body = "".join(charts.div(f) for _, f in figs) if figs else _note("No progression points in the index.")
    return _section("progression", "Stage progression",
                    _note("Score against training step for each base model, stage after stage "
                          "(shaded bands name the stage); error bars are 95% intervals, drawn up to "
                          f"{figures.MAX_ERROR_BARS} checkpoints a base model. With more than "
                          f"{figures.MAX_LINES} columns only the groups and the suite average are drawn "
                          "at first: click a legend entry to show a task."), body)


def categories_section(c: ReportContent, charts: _Charts) -> str:
    figs = figures.category_heatmaps(c)
    if not figs:
        body = _note("No per-category scores in the index for these checkpoints.")
    else:  # many checkpoints across: a heatmap needs the page's full width to stay legible
        body = _grid(charts, figs) if len(c.shown) <= 8 else "".join(charts.div(f) for _, f in figs)
    return _section("categories", "By category",
                    _note(f"Each task's main metric per category (department, discipline, competency, "
                          f"difficulty: the columns the data carries), for {c.shown_note}."), body)


def comparison_section(c: ReportContent, charts: _Charts) -> str:
    cmp = c.comparison
    if cmp is None:
        return _section("comparison", "Comparison", _note(c.comparison_note))
    a, b = cmp["run_a"], cmp["run_b"]
    who = _table(["", "model", "run", "fingerprint", "folder"],
                 [["A", str(a.get("model")), str(a.get("run_id")), str(a.get("fingerprint", ""))[:16],
                   str(a.get("run_dir"))],
                  ["B", str(b.get("model")), str(b.get("run_id")), str(b.get("fingerprint", ""))[:16],
                   str(b.get("run_dir"))]])
    forest = figures.comparison_forest(cmp)
    metrics = cmp.get("metrics", [])
    verdicts = [fmt.verdict(m) for m in metrics]
    metric_table = _table(fmt.comparison_metric_header(), [fmt.comparison_metric_cells(m) for m in metrics],
                          numeric={2, 3, 4, 5, 6, 8},
                          cell_classes=[{9: v} if v in ("better", "worse") else {} for v in verdicts])
    cats = sorted(cmp.get("categories", []), key=lambda x: -abs(x.get("delta") or 0))
    cat_table = (_table(fmt.comparison_category_header(), [fmt.comparison_category_cells(x) for x in cats],
                        numeric={4, 5, 6, 7, 8}) if cats else _note("No per-category scores in these runs."))
    flips = cmp.get("flips", [])
    flip_table = (_table(fmt.flip_header(), [fmt.flip_cells(f) for f in flips[:fmt.FLIPS_SHOWN]], numeric={6, 7})
                  if flips else "")
    return _section(
        "comparison", "Comparison", _note(c.comparison_note), who,
        charts.div(forest) if forest is not None else "",
        "<h3>Deltas by task and metric</h3>", metric_table,
        "<h3>Deltas by category</h3>", _note("Sorted by the size of the change."), cat_table,
        "<h3>Flipped items</h3>",
        _note(fmt.flip_summary(flips)),
        flip_table)


def pipeline_section(c: ReportContent) -> str:
    from . import pipeline as pl

    parts = [_note(pl.intro(c.pipeline))]
    for name, line in c.pipeline["lines"].items():
        rows = pl.stage_rows(line)
        badges = [{pl.VERDICT_COLUMN: "verdict v-" + r[pl.VERDICT_COLUMN].replace(" ", "-")}
                  if r[pl.VERDICT_COLUMN] in pl.VERDICTS else {} for r in rows]
        parts += [f"<h3>{escape(pl.line_title(name, line))}</h3>",
                  _table(pl.STAGE_HEADER, rows, cell_classes=badges, badges=badges)]
    return _section("pipeline", "Pipeline", *parts)


def render(c: ReportContent) -> str:
    charts = _Charts()
    sections = [leaderboard_section(c), tasks_section(c, charts), progression_section(c, charts),
                categories_section(c, charts), comparison_section(c, charts)]
    links = [("leaderboard", "Leaderboard"), ("tasks", "By task"), ("progression", "Progression"),
             ("categories", "By category"), ("comparison", "Comparison")]
    if c.pipeline is not None:  # the gate decisions right after the leaderboard they explain
        sections.insert(1, pipeline_section(c))
        links.insert(1, ("pipeline", "Pipeline"))
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")  # never close our own tag early
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in links)
    return (
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"generator\" content=\"aimed-eval report\">"
        f"<title>AiMed-Eval report</title><style>{STYLE}</style>\n"
        f"<script type=\"text/javascript\">{plotly_js}</script></head>\n"
        f"<body data-charts=\"{charts.count}\"><h1>AiMed-Eval report</h1>"
        f"<p class=\"meta\">Generated {escape(c.generated)} from {escape(str(c.db_path))}; "
        f"filters: {escape(c.filters.describe())}; {len(c.board.rows)} checkpoints, "
        f"{len(c.board.tasks)} tasks, {charts.count} charts.</p><nav>{nav}</nav>\n"
        + "\n".join(sections) + "\n</body></html>\n")
