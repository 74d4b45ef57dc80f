"""The checkpoint picker every view shares (drill-down, compare, samples): one selectbox
over the board's rows, labelled the same way everywhere, defaulting to the checkpoint the
report would pick (``best_index``) unless the view asks for another."""

from __future__ import annotations

from typing import Optional

import streamlit as st

from . import data


def best_index(rows: list[dict]) -> int:
    """The row with the highest headline number (the suite score, else the average), the
    first row where no row has one."""
    scored = [i for i, r in enumerate(rows) if r.get("average") is not None]
    return max(scored, key=lambda i: rows[i]["average"]) if scored else 0


def default_pair(rows: list[dict]) -> tuple[tuple[int, int], str]:
    """((A, B), why): the report's rule (``reports/comparison.py``): the best checkpoint
    against its parent; where the best one's parent is not on the board, the best
    checkpoint whose parent is. A manifest names its parent by path or fingerprint."""
    ranked = sorted((i for i, r in enumerate(rows) if r.get("average") is not None),
                    key=lambda i: -rows[i]["average"])
    for n, i in enumerate(ranked):
        parent = rows[i].get("parent")
        for j, other in enumerate(rows):
            if parent and j != i and parent in (other["fingerprint"], other.get("model"), other["checkpoint"],
                                                other["run_id"]):
                why = "the best checkpoint" if n == 0 else "the best checkpoint whose parent is on the board"
                return (j, i), f"By default B is {why} and A its parent, as in the report."
    pair = (0, 1) if len(rows) > 1 else (0, 0)
    return pair, "No checkpoint on the board has its parent here: the first two rows are compared."


def view_rows(board: dict, title: str) -> list[dict]:
    """Start a view: its header, and the board's rows; a note (and no rows) when the filters
    leave none."""
    st.header(title)
    if not board["rows"]:
        st.info("No checkpoint matches the filters.")
    return board["rows"]


def pick_checkpoint(rows: list[dict], key: str, label: str = "checkpoint", default: Optional[int] = None,
                    where=None) -> int:
    """The index of the picked row; ``where``: a streamlit container (a column) to draw in."""
    labels = [data.checkpoint_label(r) for r in rows]
    return (where or st).selectbox(label, range(len(rows)), index=best_index(rows) if default is None else default,
                                   format_func=labels.__getitem__, key=key)
