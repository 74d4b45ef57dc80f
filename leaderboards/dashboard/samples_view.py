"""The sample browser: a checkpoint's items for one task, searched by text (id,
question, target, output) and filtered by score. It opens on the best checkpoint (the
highest headline score), whose answers are the ones worth reading first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from . import data, tables
from .picker import pick_checkpoint, view_rows
from .samples import sample_tasks, search_items

MAX_SHOWN = 200
SCORED = {"all": "all items", "right": "score = 1", "wrong": "score < 1"}


def items_frame(items: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"doc": i["doc_id"], "id": i["id"], "question": i["question"], "target": i["target"],
                          "output": i["output"], "score": i["score"]} for i in items],
                        columns=["doc", "id", "question", "target", "output", "score"], dtype=object)


def render(board: dict) -> None:
    rows = view_rows(board, "Samples")
    if not rows:
        return
    row = rows[pick_checkpoint(rows, "smp_checkpoint")]
    run_dir = Path(row["run_dir"])
    tasks = sample_tasks(run_dir) if run_dir.is_dir() else []
    if not tasks:
        st.warning(f"No samples_<task>.jsonl files in {run_dir}: the run folder has moved or was imported "
                   "from lm-eval without --log_samples.")
        return
    task = st.selectbox("task", tasks, key="smp_task")
    metric = row["scores"].get(task, (None, None, None))[2]
    items = data.items(str(run_dir), task, metric)
    left, right = st.columns([3, 1])
    query = left.text_input("search (id, question, target, output; every word must match)", key="smp_query")
    scored = right.selectbox("score", list(SCORED), format_func=SCORED.__getitem__, key="smp_scored")
    hits = search_items(items, query, scored)
    metric_name = items[0]["metric"] if items else metric
    st.caption(f"{len(hits)} of {len(items)} items · score = {metric_name}"
               + (f" · showing the first {MAX_SHOWN}" if len(hits) > MAX_SHOWN else ""))
    tables.show(items_frame(hits[:MAX_SHOWN]), "samples")
