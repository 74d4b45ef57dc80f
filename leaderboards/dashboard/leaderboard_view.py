"""The leaderboard: one row a checkpoint (its latest run), grouped by base model and
stage, one column a task (its main metric) plus the suite average; ★ marks the best
checkpoint of each stage.

Drawn as one HTML table (``tables.show``: fast, rows in the page); a toggle swaps in
streamlit's sortable grid.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from . import tables

BEST = "★"


def task_column(task: str, metric: str) -> str:
    return f"{task} ({metric})"


def board_frame(board: dict, with_stderr: bool = False) -> pd.DataFrame:
    """The table the page shows: best mark, checkpoint, lineage, average, one column a
    task (rounded to 4 places; "value ± stderr" text when ``with_stderr``), date, run id."""
    metrics = dict(board.get("metrics") or {})
    for row in board["rows"]:
        for task, (_, _, metric) in row["scores"].items():
            metrics.setdefault(task, metric)
    records = []
    for row in board["rows"]:
        rec = {"best": BEST if row.get("best_in_stage") else "", "checkpoint": row["checkpoint"],
               "base model": row["base_model"], "stage": row["stage"],
               "step": "" if row.get("step") is None else str(row["step"]),
               "average": _cell(row.get("average"), None, False)}
        for task in board["tasks"]:
            value, se, _ = row["scores"].get(task, (None, None, None))
            rec[task_column(task, metrics.get(task, "?"))] = _cell(value, se, with_stderr)
        rec["date"] = _date(row.get("date"))
        rec["run id"] = row["run_id"]
        records.append(rec)
    columns = ["best", "checkpoint", "base model", "stage", "step", "average",
               *(task_column(t, metrics.get(t, "?")) for t in board["tasks"]), "date", "run id"]
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


def _date(value) -> str:
    if isinstance(value, (int, float)) and value > 0:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(value))
    return "" if value is None else str(value)


def render(board: dict) -> None:
    st.header("Leaderboard")
    rows = board["rows"]
    if not rows:
        st.info("No checkpoint matches these filters.")
        return
    bases = len({r["base_model"] for r in rows})
    st.caption(f"{len(rows)} checkpoints · {bases} base models · {len(board['tasks'])} tasks · "
               f"{BEST} best average of its base model and stage")
    left, right = st.columns(2)
    with_stderr = left.toggle("show standard errors", key="lb_stderr")
    grid = right.toggle("sortable grid", key="lb_grid")
    frame = board_frame(board, with_stderr and not grid)
    if grid:
        st.dataframe(frame.infer_objects(), hide_index=True, height=min(35 * len(frame) + 40, 900))
    else:
        tables.show(frame, "leaderboard", row_classes(rows))
