"""The report as one self-contained HTML file: plotly.js inlined once, every chart a
figure spec (JSON) that one loader script draws, no link to any other file or host, so
the page works offline and can be mailed or attached to a CI run as it is.

plotly.js is 4.8 MB of the page, so it travels gzip-compressed and base64-encoded (2.0
MB) and the browser unpacks it with ``DecompressionStream`` (Chrome/Edge 80, Firefox 113,
Safari 16.4); where that is missing the page says so above the charts and the tables,
which need no script, still read. plotly ships no smaller bundle that draws every trace
type the report uses (bar, scatter, heatmap), and a link to a CDN would break offline.

Every piece of text that comes from the index or a run (model names, task names,
questions, outputs) is HTML-escaped here; chart data is escaped by plotly's JSON.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
from html import escape

from plotly.io.json import to_json_plotly
from plotly.offline import get_plotlyjs

from aimed.leaderboards import robustness as robust

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
table.flips{table-layout:fixed;width:100%}table.flips td{overflow-wrap:anywhere;white-space:pre-wrap}
table.flips col.narrow{width:7%}table.flips col.text{width:24%}table.flips col.target{width:10%}
table.flips col.output{width:20%}table.flips col.score{width:4.5em}#plotly-status{color:#8a5a00}
td.better{color:#1a7f1a;font-weight:600}td.worse{color:#c0392b;font-weight:600}
td.verdict span{display:inline-block;padding:1px 8px;border-radius:9px;font-weight:600;white-space:nowrap}
td.v-promoted span{background:#dff3df;color:#1a6b1a}td.v-reward-model span{background:#e3ecfb;color:#1f4e9c}
td.v-not-promoted span{background:#fdf0d5;color:#8a5a00}td.v-failed span{background:#fbe1de;color:#a8261b}
"""


class _Charts:
    """Numbers the chart divs; each is an empty div plus its figure as JSON, which the
    page's loader draws once plotly.js is unpacked (``LOADER``)."""

    def __init__(self):
        self.count = 0

    def div(self, fig: dict) -> str:
        self.count += 1
        height = int(fig["layout"].get("height") or 400)
        spec = to_json_plotly({"data": fig["data"], "layout": fig["layout"]})  # escapes <, >, /
        return (f'<div class="chart"><div id="chart-{self.count}" class="plotly-graph-div" '
                f'style="height:{height}px;width:100%"></div>'
                f'<script type="application/json" class="figure" data-for="chart-{self.count}">{spec}</script></div>')


@functools.lru_cache(maxsize=1)
def packed_plotlyjs() -> str:
    """plotly.js gzip-compressed (mtime 0: the same bytes every time) and base64-encoded."""
    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")


LOADER = """(async function () {
  const status = document.getElementById("plotly-status");
  try {
    const packed = Uint8Array.from(atob(document.getElementById("plotly-gz").textContent), c => c.charCodeAt(0));
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = document.createElement("script");
    code.text = await new Response(stream).text();
    document.head.appendChild(code);
    for (const spec of document.querySelectorAll("script.figure")) {
      const fig = JSON.parse(spec.textContent);
      await Plotly.newPlot(document.getElementById(spec.dataset.for), fig.data, fig.layout, CONFIG);
    }
    status.remove();
  } catch (err) {
    status.textContent = "The charts could not be drawn: this browser cannot unpack the plotly.js this page " +
      "carries (Chrome or Edge 80+, Firefox 113+, Safari 16.4+ can): " + err;
  }
})();"""


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None,
           numeric: set[int] = frozenset(), cell_classes: list[dict[int, str]] | None = None,
           badges: list[dict[int, str]] | None = None, name: str = "", columns: list[str] | None = None) -> str:
    """``badges``: the cells (row, column) whose text is drawn as a badge (a span the CSS
    styles); ``name``: the table's class; ``columns``: a class a column (``<colgroup>``),
    which fixed-layout tables take their widths from."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    cols = "<colgroup>" + "".join(f'<col class="{c}">' for c in columns) + "</colgroup>" if columns else ""
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
    table_class = f' class="{name}"' if name else ""
    return (f'<div class="scroll"><table{table_class}>{cols}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _section(anchor: str, title: str, *parts: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def leaderboard_section(c: ReportContent) -> str:
    rows = c.board.rows
    header = fmt.leaderboard_header(c.board, c.main_metric)
    numeric = set(range(7, len(header)))
    return _section("leaderboard", "Leaderboard",
                    _note(f"{len(rows)} checkpoints (each its latest run); ★ marks the best checkpoint of each "
                          f"base model and stage by its {fmt.headline_name(c.board)}; scores are value "
                          f"[95% interval]; {fmt.INTERVAL_NOTE}."),
                    _table(header, [fmt.leaderboard_cells(r, c.board) for r in rows],
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
                          f"{figures.MAX_LINES} columns only the groups (the suite among them) or the average are drawn "
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
    flip_table = (_table(fmt.flip_header(), [fmt.flip_cells(f) for f in flips[:fmt.FLIPS_SHOWN]], numeric={6, 7},
                         name="flips", columns=FLIP_COLUMNS) if flips else "")
    return _section(
        "comparison", "Comparison", _note(c.comparison_note), who,
        charts.div(forest) if forest is not None else "",
        "<h3>Deltas by task and metric</h3>", metric_table,
        "<h3>Deltas by category</h3>", _note("Sorted by the size of the change."), cat_table,
        "<h3>Flipped items</h3>",
        _note(fmt.flip_summary(flips)),
        flip_table)


def robustness_section(c: ReportContent) -> str:
    rows = [robust.cells(r, c.labels.get(r["run_id"], r["run_id"])) for r in c.robustness]
    return _section("robustness", "Robustness: option order and training data", _note(robust.NOTE),
                    _table(robust.HEADER, rows, numeric={3, 4, 5, 6, 7}))


# task, item, question, target, A output, B output, A score, B score: the question and the
# two outputs side by side in capped widths (fixed layout), so B never scrolls out of view
FLIP_COLUMNS = ["narrow", "narrow", "text", "target", "output", "output", "score", "score"]


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
    if c.robustness:  # only runs scored with --circular or --contamination_data have these
        sections.insert(2, robustness_section(c))
        links.insert(2, ("robustness", "Robustness"))
    if c.pipeline is not None:  # the gate decisions right after the leaderboard they explain
        sections.insert(1, pipeline_section(c))
        links.insert(1, ("pipeline", "Pipeline"))
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in links)
    return (
        "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"generator\" content=\"aimed-eval report\">"
        f"<title>AiMed-Eval report</title><style>{STYLE}</style></head>\n"
        f"<body data-charts=\"{charts.count}\"><h1>AiMed-Eval report</h1>"
        f"<p class=\"meta\">Generated {escape(c.generated)} from {escape(str(c.db_path))}; "
        f"filters: {escape(c.filters.describe())}; {len(c.board.rows)} checkpoints, "
        f"{len(c.board.tasks)} tasks, {charts.count} charts.</p><nav>{nav}</nav>\n"
        '<p id="plotly-status" class="note">Drawing the charts…</p>\n'
        + "\n".join(sections)
        # base64 text only (A-Z, a-z, 0-9, +, /, =): nothing in it can close the tag
        + f'\n<script type="application/octet-stream" id="plotly-gz">{packed_plotlyjs()}</script>\n'
        f"<script>const CONFIG = {json.dumps(CONFIG)};\n{LOADER}</script>\n</body></html>\n")
