"""Stage progression: a task's score against training step, stage after stage
(pt, sft, rm, ppo, dpo), one line a base model."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from . import charts, data, tables


def render(db_path: str, version: tuple, base_models: tuple, stages: tuple, tasks: tuple) -> None:
    st.header("Stage progression")
    rows = data.progression(db_path, version, base_models, tasks)
    if stages:  # the query filters by base model and task; the stage filter applies here
        rows = [r for r in rows if r["stage"] in stages]
    if not rows:
        st.info("No scores to plot for these filters.")
        return
    names = list(dict.fromkeys(r["task"] for r in rows))  # in the query's (suite) order
    task = st.selectbox("task", names, key="prog_task")
    st.plotly_chart(charts.progression_figure(rows, task), key="prog_fig")
    with st.expander("points"):
        these = [r for r in rows if r["task"] == task]
        tables.show(pd.DataFrame(these, columns=["base_model", "stage", "step", "checkpoint", "metric", "value",
                                                 "stderr", "run_id"], dtype=object), "progression")
