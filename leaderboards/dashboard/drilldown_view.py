"""One checkpoint in detail: where it came from, its score on every task, and its
scores per category of each annotation column (department, discipline, competency,
difficulty, ...), as bars with standard errors and as a table."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimed.leaderboards import robustness as robust
from aimed.leaderboards.query import date_text
from aimed.leaderboards.training_labels import training_figures

from . import charts, data, tables
from .picker import pick_checkpoint, view_rows


def lineage_frame(info: dict) -> pd.DataFrame:
    keys = ("model", "fingerprint", "base_model", "stage", "step", "parent", "adapter", "date", "run_dir", "source")
    shown = []
    for key in keys:
        if info.get(key) in (None, ""):
            continue
        value = info[key]
        if key == "date":
            value = date_text(value)
        shown.append({"field": key.replace("_", " "), "value": str(value)})
    return pd.DataFrame(shown, columns=["field", "value"], dtype=object)


def training_frame(manifest: dict) -> pd.DataFrame:
    """The manifest's training figures, each under the name of what it is (the PPO KL
    estimate, the reward model's training-pair and held-out figures: ``format.training_figures``)."""
    rows = training_figures(manifest.get("train_metrics") or {}, manifest.get("config"), manifest.get("eval"))
    return pd.DataFrame([{"figure": k, "value": v} for k, v in rows], columns=["figure", "value"], dtype=object)


def scores_frame(row: dict) -> pd.DataFrame:
    return pd.DataFrame([{"task": t, "metric": m, "value": v, "stderr": se}
                         for t, (v, se, m) in row["scores"].items()],
                        columns=["task", "metric", "value", "stderr"], dtype=object)


def render(db_path: str, version: tuple, board: dict) -> None:
    rows = view_rows(board, "Checkpoint drill-down")
    if not rows:
        return
    row = rows[pick_checkpoint(rows, "dd_checkpoint")]
    left, right = st.columns([2, 3])
    with left:
        st.subheader("Lineage")
        tables.show(lineage_frame(data.run_info(db_path, version, row["run_id"])), "lineage")
    with right:
        st.subheader("Scores")
        what = f"{board['headline']} suite score" if board.get("headline") else "average"
        st.caption(f"{what} {row['average']:.4f}" if row.get("average") is not None else "")
        tables.show(scores_frame(row), "scores")
        checks = data.robustness(db_path, version, row["run_id"], tuple(sorted(board["metrics"].items())))
        if checks:
            st.subheader("Robustness")
            st.caption(robust.NOTE)
            tables.show(pd.DataFrame([robust.cells(c, "")[1:] for c in checks],
                                     columns=robust.HEADER[1:], dtype=object), "robustness")
        training = training_frame(data.manifest(row["run_dir"]))
        if len(training):
            st.subheader("Training")
            st.caption("The stage's own figures from the checkpoint's manifest, first → last.")
            tables.show(training, "training")

    cats = data.category_scores(db_path, version, row["run_id"])
    st.subheader("By category")
    if not cats:
        st.info("This run has no per-category scores (its tasks carry no annotation columns).")
        return
    tasks = sorted({c["task"] for c in cats})
    task = st.selectbox("task", tasks, key="dd_task")
    cells = [c for c in cats if c["task"] == task]
    metrics = sorted({c["metric"] for c in cells})
    main = row["scores"].get(task, (None, None, None))[2]
    metric = st.selectbox("metric", metrics, index=metrics.index(main) if main in metrics else 0, key="dd_metric")
    cells = [c for c in cells if c["metric"] == metric]
    columns = sorted({c["column"] for c in cells})
    for tab, column in zip(st.tabs(columns), columns):
        with tab:
            these = [c for c in cells if c["column"] == column]
            st.plotly_chart(charts.category_figure(these, f"{task} · {column}"), key=f"dd_fig_{column}")
            tables.show(pd.DataFrame(these, columns=["category", "n", "value", "stderr"], dtype=object),
                        f"categories-{column}")
