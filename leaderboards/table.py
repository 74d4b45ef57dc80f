"""Render a leaderboard (and the stage-progression view) as text, Markdown, CSV or JSON.

Plain string building, no pandas: `aimed-eval leaderboard` must print in well under a
second, and most of that budget is Python starting up.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Optional

from .query import AVERAGE, PREDICT_ONLY, Leaderboard, Row, date_text

BEST = "★"
BARS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"


def _num(value: Optional[float]) -> str:
    return "—" if value is None else f"{value:.4f}"


def _step(row: Row) -> str:
    return "—" if row.step is None else str(row.step)


def _date(ts: float) -> str:
    return date_text(ts, "—")


def shown_columns(board: Leaderboard, every: bool = False) -> list[str]:
    """The task columns a table shows: with a suite (``board.headline``), its direct members
    and the suite itself (so the ``medqa`` table fits a terminal: the CMMLU subjects sit in
    ``cmmlu_medical``); every column with ``every`` or without a suite."""
    if every or not board.headline:
        return list(board.tasks)
    members = set(board.members.get(board.headline, []))
    return [t for t in board.tasks if t in members] + [board.headline]


def headline_name(board: Leaderboard) -> str:
    return f"{board.headline} (suite score)" if board.headline else AVERAGE


def _header(board: Leaderboard, columns: list[str]) -> list[str]:
    """Markdown's column names: each task with its metric; the headline column last."""
    names = [f"{t} ({board.metrics[t]})" for t in columns if t != board.headline]
    return names + [headline_name(board)]


def _cells(board: Leaderboard, row: Row, columns: list[str]) -> list[str]:
    """``_cell`` of each column, in one loop (the table's hot path: ~10^5 cells)."""
    scores, metrics, out = row.scores, board.metrics, []
    for task in columns:
        got = scores.get(task)
        if got is None:
            out.append("—")
            continue
        value, _, metric = got
        text = "—" if value is None else f"{value:.4f}"
        # another metric than the column's: say which, so nobody compares chrf with rougeL
        out.append(text if metric == metrics[task] else f"{text} ({metric})")
    return out


def _align(lines: list[list[str]], right_from: int) -> list[str]:
    widths = [max(map(len, column)) for column in zip(*lines)]
    left, right = widths[:right_from], widths[right_from:]
    return ["  ".join([*map(str.ljust, line[:right_from], left), *map(str.rjust, line[right_from:], right)]).rstrip()
            for line in lines]


def _extra_metrics(board: Leaderboard, columns: list[str], scores: dict) -> list[tuple[str, str]]:
    """(task, metric) of every recorded metric other than the columns' main ones."""
    seen: dict[tuple[str, str], None] = {}
    for t in columns:
        for by_task in scores.values():
            for metric in sorted(by_task.get(t, {})):
                if metric != board.metrics[t]:
                    seen[(t, metric)] = None
    return list(seen)


def render_table(board: Leaderboard, all_scores: Optional[dict] = None) -> str:
    """One block a base model; within it, rows by stage and step; ★ marks each stage's best,
    on its headline number. ``all_scores`` (``query.all_scores``): every column and every
    metric (``--all_metrics``), else the suite's members and the suite score."""
    if not board.rows:
        return "no runs match; widen the filters or record runs with `aimed-eval run`\n"
    columns = [t for t in shown_columns(board, all_scores is not None) if t != board.headline]
    extra = _extra_metrics(board, columns, all_scores) if all_scores is not None else []
    head_metric = "suite score" if board.headline else "main metrics"
    names = ["stage", "checkpoint", "step", *columns, *(t for t, _ in extra), board.headline or AVERAGE, "", "date"]
    metrics = ["", "", "", *[board.metrics[t] for t in columns], *(m for _, m in extra), head_metric, "", ""]
    out = []
    for base in dict.fromkeys(r.base_model for r in board.rows):
        rows = [r for r in board.rows if r.base_model == base]
        lines = [names, metrics]
        for r in rows:
            more = [_num((all_scores or {}).get(r.run_id, {}).get(t, {}).get(m)) for t, m in extra]
            lines.append([r.stage, r.checkpoint, _step(r), *_cells(board, r, columns), *more,
                          _num(r.average), BEST if r.best_in_stage else "", _date(r.date)])
        aligned = _align(lines, right_from=2)
        width = max(len(a) for a in aligned)
        out += [f"== {base} ==", *aligned[:2], "-" * width, *aligned[2:], ""]
    if not any(r.average is not None for r in board.rows):
        out.append("(no checkpoint scored every task shown: choose the columns with --tasks to get averages)")
    what = (f"the {board.headline} suite score (mean of its members' main metrics)" if board.headline else
            "the mean of the task columns' main metrics" +
            (" (groups aside)" if board.groups and len(board.groups) < len(board.tasks) else ""))
    out.append(f"{BEST} best of its base model and stage by {what}")
    hidden = len(board.tasks) - len(columns) - bool(board.headline)
    if hidden > 0 and all_scores is None:
        out.append(f"{hidden} more columns (the suite's subjects) and every other metric: --all_metrics")
    return "\n".join(out) + "\n"


def render_markdown(board: Leaderboard, all_scores: Optional[dict] = None) -> str:
    columns = [t for t in shown_columns(board, all_scores is not None) if t != board.headline]
    head = ["base model", "stage", "checkpoint", "step", *_header(board, columns), "date"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 4 + ["---:"] * (len(head) - 5) + ["---"]) + "|"]
    for r in board.rows:
        best = f"**{_num(r.average)}** {BEST}" if r.best_in_stage else _num(r.average)
        cells = [r.base_model, r.stage, r.checkpoint.replace("|", "\\|"), _step(r),
                 *_cells(board, r, columns), best, _date(r.date)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(f"{BEST} best {headline_name(board)} of its base model and stage.")
    return "\n".join(out) + "\n"


def render_csv(board: Leaderboard) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["base_model", "stage", "checkpoint", "step", "best_in_stage", "average",
                *[c for t in board.tasks for c in (t, f"{t}_stderr")],
                "run_id", "fingerprint", "date", "run_dir"])
    for r in board.rows:
        scores = [x for t in board.tasks for x in (r.scores.get(t, (None, None))[:2])]
        w.writerow([r.base_model, r.stage, r.checkpoint, r.step, int(r.best_in_stage), r.average,
                    *["" if x is None else x for x in scores], r.run_id, r.fingerprint, _date(r.date), r.run_dir])
    return buf.getvalue()


def render_json(board: Leaderboard) -> str:
    return json.dumps(board.to_dict(), ensure_ascii=False, indent=1) + "\n"


RENDERERS = {"table": render_table, "markdown": render_markdown, "csv": render_csv, "json": render_json}
TAKES_ALL_METRICS = ("table", "markdown")


def _spark(values: list[float], lo: float, hi: float, width: int = 24) -> str:
    """One character a checkpoint; more than ``width`` checkpoints share characters (means)."""
    if len(values) > width:
        cuts = [round(i * len(values) / width) for i in range(width + 1)]
        values = [sum(values[a:b]) / (b - a) for a, b in zip(cuts, cuts[1:])]
    span = (hi - lo) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int((v - lo) / span * len(SPARKS)))] for v in values)


def _bar(value: float, lo: float, hi: float, width: int = 24) -> str:
    """A bar from the base model's lowest score to its highest, in eighths of a cell."""
    eighths = round((value - lo) / ((hi - lo) or 1.0) * width * 8)
    return ("█" * (eighths // 8) + (BARS[eighths % 8] if eighths % 8 else "")).ljust(width)


def render_progression(board: Leaderboard) -> str:
    """Score against training step, stage after stage, per base model: a stage line with a
    sparkline of its checkpoints, then one bar a checkpoint. The score is the average of
    the columns shown (one task with --tasks NAME)."""
    scored = [t for t in board.tasks if board.metrics[t] != PREDICT_ONLY]  # what the average is of
    leaves = [t for t in scored if t not in board.groups] or scored
    what = leaves[0] if len(leaves) == 1 else f"average of {len(leaves)} tasks' main metrics"
    out = [f"stage progression: {what}", ""]
    for base in dict.fromkeys(r.base_model for r in board.rows):
        rows = [r for r in board.rows if r.base_model == base]
        vals = [r.average for r in rows if r.average is not None]
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        out.append(f"== {base} ==  ({len(rows)} checkpoints, {_num(lo)} to {_num(hi)})")
        for stage in dict.fromkeys(r.stage for r in rows):
            srows = [r for r in rows if r.stage == stage]
            svals = [r.average for r in srows if r.average is not None]
            steps = [r.step for r in srows if r.step is not None]
            span = f"steps {min(steps)}–{max(steps)}" if steps else "no step"
            trend = f"{_num(svals[0])} → {_num(svals[-1])}, best {_num(max(svals))}" if svals else "no scores"
            out.append(f"  {stage:<5} {len(srows)} checkpoint(s), {span}: {trend}  {_spark(svals, lo, hi)}")
            for r in srows:
                mark = f" {BEST}" if r.best_in_stage else ""
                bar = _bar(r.average, lo, hi) if r.average is not None else " " * 24
                out.append(f"        {_step(r):>7}  {bar} {_num(r.average)}{mark}  {r.checkpoint}")
        out.append("")
    if not board.rows:
        out.append("no runs match; widen the filters or record runs with `aimed-eval run`")
    return "\n".join(out) + "\n"
