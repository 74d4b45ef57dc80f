"""The AiMed-Eval dashboard (streamlit), read-only over the results index.

Started by ``aimed-eval dashboard``, which runs ``streamlit run dashboard_app.py -- --db
PATH``; ``AIMED_DB`` works too. The sidebar picks a view (leaderboard, checkpoint
drill-down, compare, stage progression, samples; ``?view=...`` links to one) and the
filters every view shares. Only the chosen view runs, so the leaderboard page costs one
cached query however many runs the index holds.
"""

from __future__ import annotations

import sys

import streamlit as st

from aimed.harness.index import where
from aimed.leaderboards.dashboard import (compare_view, data, drilldown_view, leaderboard_view,
                                          progression_view, samples_view)

VIEWS = ("Leaderboard", "Checkpoint", "Compare", "Progression", "Samples")

st.set_page_config(page_title="AiMed-Eval dashboard", layout="wide")

db_path = data.db_path_from_argv(sys.argv[1:])
problem = data.check_index(db_path)
if problem:
    st.error(problem)
    st.stop()
db = str(db_path)
shown = where(db_path)  # a PostgreSQL URL without its password: the page never shows it
version = data.index_version(db_path)

everything = data.leaderboard(db, version)
if not everything["rows"]:
    st.info(f"No runs in {shown} yet: `aimed-eval run` records each run it writes, "
            "`aimed-eval import RUN_DIR...` records existing ones.")
    st.stop()

with st.sidebar:
    st.title("AiMed-Eval")
    view = st.radio("view", VIEWS, key="view", bind="query-params")
    bases = sorted({r["base_model"] for r in everything["rows"]})
    stages = list(dict.fromkeys(r["stage"] for r in sorted(everything["rows"], key=lambda r: r["stage_index"])))
    st.subheader("Filters")
    pick_bases = tuple(st.multiselect("base model", bases, key="f_base", placeholder="all"))
    pick_stages = tuple(st.multiselect("stage", stages, key="f_stage", placeholder="all"))
    pick_tasks = tuple(st.multiselect("tasks", everything["tasks"], key="f_tasks", placeholder="all"))
    st.caption(f"index: {shown}")

board = (everything if not (pick_bases or pick_stages or pick_tasks)
         else data.leaderboard(db, version, pick_bases, pick_stages, pick_tasks))

if view == "Leaderboard":
    leaderboard_view.render(board)
elif view == "Checkpoint":
    drilldown_view.render(db, version, board)
elif view == "Compare":
    compare_view.render(board)
elif view == "Progression":
    progression_view.render(db, version, pick_bases, pick_stages, pick_tasks)
else:
    samples_view.render(board)
