"""The leaderboard: one row a checkpoint (its latest run), grouped by base model and
stage, one column a task (its main metric) and the headline number (the suite score
where a suite was run, else the average of the columns); ★ marks the best checkpoint of
each stage. With a suite, its members' columns are shown (a toggle shows every subject),
as ``aimed-eval leaderboard`` does.

Drawn as one HTML table (``tables.show``: fast, rows in the page); a toggle swaps in
streamlit's sortable grid.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimed.leaderboards.query import date_text

from . import tables
from .picker import view_rows

BEST = "★"


def task_column(task: str, metric: str) -> str:
    return f"{task} ({metric})"


def shown_tasks(board: dict, every: bool = False) -> list[str]:
    """The task columns: the suite's members (the suite is the headline column), or all."""
    headline = board.get("headline")
    if every or not headline:
        return [t for t in board["tasks"] if t != headline]
    members = set((board.get("members") or {}).get(headline, []))
    return [t for t in board["tasks"] if t in members]


def headline_column(board: dict) -> str:
    return f"{board['headline']} (suite score)" if board.get("headline") else "average"


def board_frame(board: dict, with_stderr: bool = False, every: bool = False) -> pd.DataFrame:
    """The table the page shows: best mark, checkpoint, lineage, the headline number, one
    column a task (rounded to 4 places; "value ± stderr" text when ``with_stderr``), date,
    run id."""
    metrics = dict(board.get("metrics") or {})
    for row in board["rows"]:
        for task, (_, _, metric) in row["scores"].items():
            metrics.setdefault(task, metric)
    records = []
    for row in board["rows"]:
        rec = {"best": BEST if row.get("best_in_stage") else "", "checkpoint": row["checkpoint"],
               "base model": row["base_model"], "stage": row["stage"],
               "step": "" if row.get("step") is None else str(row["step"]),
               headline_column(board): _cell(row.get("average"), None, False)}
        for task in shown_tasks(board, every):
            value, se, _ = row["scores"].get(task, (None, None, None))
            rec[task_column(task, metrics.get(task, "?"))] = _cell(value, se, with_stderr)
        rec["date"] = date_text(row.get("date"), "")
        rec["run id"] = row["run_id"]
        records.append(rec)
    columns = ["best", "checkpoint", "base model", "stage", "step", headline_column(board),
               *(task_column(t, metrics.get(t, "?")) for t in shown_tasks(board, every)), "date", "run id"]
    return pd.DataFrame.from_records(records, columns=columns).astype(object)


def row_classes(rows: list[dict]) -> list[str]:
    """'best' for the best of each stage; 'group-start' where a new base model begins."""
    out, last = [], None
    for row in rows:
        cls = ["best"] if row.get("best_in_stage") else []
        if last is not None and row["base_model"] != last:
            cls.append("group-start")
        last = row["base_model"]
        out.append(" ".join(cls))
    return out


def _cell(value, se, with_stderr: bool):
    if value is None:
        return "" if with_stderr else None
    if with_stderr:
        return f"{value:.4f} ± {se:.4f}" if se is not None else f"{value:.4f}"
    return round(float(value), 4)


def render(board: dict) -> None:
    rows = view_rows(board, "Leaderboard")
    if not rows:
        return
    bases = len({r["base_model"] for r in rows})
    st.caption(f"{plural(len(rows), 'checkpoint')} · {plural(bases, 'base model')} · "
               f"{plural(len(board['tasks']), 'task')} · {BEST} best {headline_column(board)} of its base model "
               "and stage")
    left, middle, right = st.columns(3)
    with_stderr = left.toggle("show standard errors", key="lb_stderr")
    every = middle.toggle("every task column", key="lb_every", disabled=not board.get("headline"),
                          help="the suite's subjects too (by default the suite's members and its score)")
    grid = right.toggle("sortable grid", key="lb_grid")
    frame = board_frame(board, with_stderr and not grid, every)
    if grid:
        st.dataframe(frame.infer_objects(), hide_index=True, height=min(35 * len(frame) + 40, 900))
    else:
        tables.show(frame, "leaderboard", row_classes(rows))


def plural(n: int, noun: str) -> str:
    """``1 base model``, ``4 base models``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
