"""Two checkpoints compared (``aimed.harness.compare.compare_runs``): per task and metric
the difference B - A with its paired-bootstrap 95% interval and paired test, the
differences per category, and the items that flipped, with both models' outputs side by
side."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aimed.harness.compare_format import pval

from . import charts, data, tables
from .picker import default_pair, pick_checkpoint
from .samples import search_items

MAX_FLIPS = 100  # a table of thousands of flips helps nobody; search narrows it


def metrics_frame(metrics: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "task": m["task"], "metric": m["metric"], "A": _r(m["a"]), "B": _r(m["b"]), "delta (B-A)": _r(m["delta"]),
        "95% interval": f"[{_f(m.get('ci_low'))}, {_f(m.get('ci_high'))}]",
        "p": "" if m.get("p_value") is None else pval(m["p_value"]), "test": m.get("test", ""), "n": m.get("n"),
        "significant": "yes" if m.get("significant") else "no"} for m in metrics],
        columns=["task", "metric", "A", "B", "delta (B-A)", "95% interval", "p", "test", "n", "significant"], dtype=object)


def categories_frame(cats: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"task": c["task"], "column": c["column"], "category": c["category"],
                          "metric": c["metric"], "A": _r(c["a"]), "B": _r(c["b"]),
                          "delta (B-A)": _r(c["delta"]), "n A": c.get("n_a"), "n B": c.get("n_b")}
                         for c in cats],
                        columns=["task", "column", "category", "metric", "A", "B", "delta (B-A)", "n A", "n B"],
                        dtype=object)


def flips_frame(flips: list[dict]) -> pd.DataFrame:
    """A and B outputs next to each other (``tables.STYLE`` caps the columns' widths)."""
    return pd.DataFrame([{"task": f["task"], "id": f.get("id"), "question": f.get("question"),
                          "target": f.get("target"), "A output": f.get("a_output"), "B output": f.get("b_output"),
                          "A score": _r(f.get("a_score")), "B score": _r(f.get("b_score"))} for f in flips],
                        columns=["task", "id", "question", "target", "A output", "B output", "A score", "B score"],
                        dtype=object)


def _r(x):
    return None if x is None else round(float(x), 4)


def _f(x) -> str:
    return "" if x is None else f"{x:.4g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}"


def render(board: dict) -> None:
    st.header("Compare two checkpoints")
    rows = board["rows"]
    if len(rows) < 2:
        st.info(f"Comparing needs two checkpoints; {len(rows)} on the board (loosen the filters?).")
        return
    (a0, b0), why = default_pair(rows)
    left, right = st.columns(2)
    a = pick_checkpoint(rows, "cmp_a", "A (baseline)", a0, left)
    b = pick_checkpoint(rows, "cmp_b", "B (candidate)", b0, right)
    st.caption(why)
    result = data.comparison(rows[a]["run_dir"], rows[b]["run_dir"])
    if "error" in result:
        st.error(result["error"])
        return

    st.subheader("Per task and metric")
    st.caption("delta = B - A over the items both runs scored; paired bootstrap 95% interval; "
               "McNemar's exact test for accuracy, paired bootstrap/permutation for the others.")
    tables.show(metrics_frame(result["metrics"]), "deltas")
    if result["metrics"]:
        st.plotly_chart(charts.delta_figure(result["metrics"]), key="cmp_deltas")

    st.subheader("Per category")
    cats = result["categories"]
    if cats:
        tasks = sorted({c["task"] for c in cats})
        task = st.selectbox("task", tasks, key="cmp_cat_task")
        tables.show(categories_frame([c for c in cats if c["task"] == task]), "category-deltas")
    else:
        st.caption("No per-category scores in these runs.")

    flips = result["flips"]
    st.subheader(f"Flipped items ({len(flips)})")
    if not flips:
        st.caption("No item changed its main-metric score between A and B.")
        return
    counts = pd.Series([f["task"] for f in flips]).value_counts()
    st.caption(" · ".join(f"{t}: {n}" for t, n in counts.items()))
    query = st.text_input("search the flipped items", key="cmp_flip_query")
    shown = _search_flips(flips, query)
    if len(shown) > MAX_FLIPS:
        st.caption(f"showing {MAX_FLIPS} of {len(shown)}; search to narrow")
    tables.show(flips_frame(shown[:MAX_FLIPS]), "flips")


def _search_flips(flips: list[dict], query: str) -> list[dict]:
    """The flips whose id, question, target or either output contain every word of the query."""
    if not query.strip():
        return flips
    as_items = [{"id": str(f.get("id", "")), "question": str(f.get("question", "")),
                 "target": str(f.get("target", "")), "output": f"{f.get('a_output')}\n{f.get('b_output')}",
                 "score": None, "flip": f} for f in flips]
    return [i["flip"] for i in search_items(as_items, query)]
