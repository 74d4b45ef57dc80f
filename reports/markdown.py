"""The report in Markdown: the HTML report's sections as tables (no charts), fit for a
pull-request comment, a wiki page or a terminal. Cells are made table-safe: pipes
escaped, line breaks folded, so user text cannot break the table's columns.
"""

from __future__ import annotations

from aimed.leaderboards import robustness as robust

from . import format as fmt
from .collect import ReportContent


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def leaderboard_section(c: ReportContent) -> str:
    rows = [fmt.leaderboard_cells(r, c.board) for r in c.board.rows]
    return (f"## Leaderboard\n\n{len(c.board.rows)} checkpoints (each its latest run); ★ marks the best "
            f"checkpoint of each base model and stage by its {fmt.headline_name(c.board)}; scores are value "
            f"[95% interval]; {fmt.INTERVAL_NOTE}.\n\n" + _table(fmt.leaderboard_header(c.board, c.main_metric), rows))


def tasks_section(c: ReportContent) -> str:
    """Per task, the shown checkpoints' scores with their 95% intervals (the bar charts' data)."""
    header = ["task", "metric", "checkpoint", "score", "95% interval", "run"]
    rows = []
    for task in c.board.tasks:
        for r in c.shown:
            cell = r.scores.get(task)
            if not cell or cell[0] is None:
                continue
            value, se = cell[0], cell[1]
            bounds = fmt.interval95(value, se, r.counts.get(task), cell[2])
            ci = f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "–"
            rows.append([task, c.main_metric.get(task, "?"),
                         c.labels[r.run_id] + (" ★" if r.best_in_stage else ""), fmt.num(value), ci, r.run_id])
    return f"## Scores by task\n\nCheckpoints: {c.shown_note}.\n\n" + _table(header, rows)


def progression_section(c: ReportContent) -> str:
    if not c.progression:
        return "## Stage progression\n\nNo progression points in the index."
    header = ["base model", "stage", "step", "checkpoint", "task", "metric", "score", "95% interval"]
    rows = [[p["base_model"], p["stage"], "–" if p["step"] is None else str(p["step"]), str(p["checkpoint"]),
             p["task"], p["metric"], fmt.num(p["value"]), _bounds(p)] for p in c.progression]
    return ("## Stage progression\n\nScore against training step for each base model, stage after stage.\n\n"
            + _table(header, rows))


def _bounds(p: dict) -> str:
    """``[lo, hi]`` of a progression or category row (value, stderr, n, metric)."""
    ci = fmt.interval95(p.get("value"), p.get("stderr"), p.get("n"), p.get("metric", ""))
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "–"


def categories_section(c: ReportContent) -> str:
    header = ["task", "column", "category", "checkpoint", "metric", "score", "95% interval", "n"]
    rows = []
    for r in c.shown:
        for x in c.categories.get(r.run_id, []):
            if x["metric"] != c.main_metric[x["task"]]:
                continue
            rows.append([x["task"], x["column"], x["category"], c.labels[r.run_id], x["metric"], fmt.num(x["value"]),
                         _bounds(x),
                         str(x.get("n") if x.get("n") is not None else "–")])
    rows.sort(key=lambda row: row[:4])
    body = _table(header, rows) if rows else "No per-category scores in the index for these checkpoints."
    return f"## By category\n\nEach task's main metric per category, for {c.shown_note}.\n\n" + body


def comparison_section(c: ReportContent) -> str:
    cmp = c.comparison
    if cmp is None:
        return "## Comparison\n\n" + c.comparison_note
    a, b = cmp["run_a"], cmp["run_b"]
    who = _table(["", "model", "run", "folder"], [["A", str(a.get("model")), str(a.get("run_id")), str(a.get("run_dir"))],
                                                   ["B", str(b.get("model")), str(b.get("run_id")), str(b.get("run_dir"))]])
    metrics = _table(fmt.comparison_metric_header(), [fmt.comparison_metric_cells(m) for m in cmp.get("metrics", [])])
    cats = sorted(cmp.get("categories", []), key=lambda x: -abs(x.get("delta") or 0))
    cat_table = (_table(fmt.comparison_category_header(), [fmt.comparison_category_cells(x) for x in cats])
                 if cats else "No per-category scores in these runs.")
    flips = cmp.get("flips", [])
    flip_table = _table(fmt.flip_header(), [fmt.flip_cells(f) for f in flips[:fmt.FLIPS_SHOWN]]) if flips else ""
    return "\n\n".join([
        "## Comparison", _cell(c.comparison_note), who, "### Deltas by task and metric", metrics,
        "### Deltas by category", cat_table, "### Flipped items",
        fmt.flip_summary(flips), flip_table]).rstrip() + "\n"


def pipeline_section(c: ReportContent) -> str:
    from . import pipeline as pl

    parts = ["## Pipeline", _cell(pl.intro(c.pipeline))]
    for name, line in c.pipeline["lines"].items():
        parts += [f"### {_cell(pl.line_title(name, line))}", _table(pl.STAGE_HEADER, pl.stage_rows(line))]
    return "\n\n".join(parts)


def robustness_section(c: ReportContent) -> str:
    rows = [robust.cells(r, c.labels.get(r["run_id"], r["run_id"])) for r in c.robustness]
    return "## Robustness: option order and training data\n\n" + robust.NOTE + "\n\n" + _table(robust.HEADER, rows)


def render(c: ReportContent) -> str:
    head = (f"# AiMed-Eval report\n\nGenerated {c.generated} from `{c.db_path}`; filters: {c.filters.describe()}; "
            f"{len(c.board.rows)} checkpoints, {len(c.board.tasks)} tasks.")
    parts = [head, leaderboard_section(c), tasks_section(c), progression_section(c), categories_section(c),
             comparison_section(c)]
    if c.robustness:  # only runs scored with --circular or --contamination_data have these
        parts.insert(3, robustness_section(c))
    if c.pipeline is not None:  # the gate decisions right after the leaderboard they explain
        parts.insert(2, pipeline_section(c))
    return "\n\n".join(p.rstrip() for p in parts) + "\n"
