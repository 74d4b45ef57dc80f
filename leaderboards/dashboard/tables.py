"""Tables as one block of HTML in the page (``st.html``: no markdown parsing on the way).

Why not ``st.table``: it renders every cell as its own React component, and a 480-row
leaderboard took 15-25 s to appear in headless Chromium on a busy 2-core machine, where
the same rows as one HTML block take 1-2 s more than the empty page
(``benchmarks/dashboard_bench.py --browser``).
Why not ``st.dataframe``: its canvas grid keeps rows out of the DOM, so a browser test or
a screen reader cannot find them (it stays available as the leaderboard's sortable grid).
Text is escaped; numbers are shown to 4 places.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import streamlit as st

STYLE = """<style>
table.aimed { border-collapse: collapse; font-size: 0.85rem; width: 100%; margin-bottom: 1rem; }
table.aimed th, table.aimed td { border: 1px solid rgba(49,51,63,0.15); padding: 0.25rem 0.5rem;
  vertical-align: top; text-align: left; white-space: pre-wrap; }
table.aimed th { position: sticky; top: 0; background: #f0f2f6; font-weight: 600; }
table.aimed td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.aimed tr.best td { background: rgba(255, 215, 0, 0.12); font-weight: 600; }
table.aimed tr.group-start td { border-top: 2px solid rgba(49,51,63,0.45); }
/* the leaderboard fits its column of the page: names wrap at their spaces and slashes, the
   numbers stay whole (td.num), and a run id (32 characters) wraps inside its cell rather
   than run past the edge, where the page's own container cut it off */
table.aimed[data-table="leaderboard"] td:last-child { word-break: break-all; min-width: 8em; }
table.aimed[data-table="leaderboard"] td:nth-last-child(2) { white-space: nowrap; }
/* flipped items: fixed layout, so A and B outputs sit side by side in capped widths */
table.aimed[data-table="flips"] { table-layout: fixed; }
table.aimed[data-table="flips"] td { overflow-wrap: anywhere; }
table.aimed[data-table="flips"] th:nth-child(1), table.aimed[data-table="flips"] th:nth-child(2) { width: 8%; }
table.aimed[data-table="flips"] th:nth-child(3) { width: 24%; }
table.aimed[data-table="flips"] th:nth-child(4) { width: 10%; }
table.aimed[data-table="flips"] th:nth-child(5), table.aimed[data-table="flips"] th:nth-child(6) { width: 20%; }
table.aimed[data-table="flips"] th:nth-child(7), table.aimed[data-table="flips"] th:nth-child(8) { width: 5em; }
div.aimed-scroll { overflow-x: auto; }
</style>"""


def cell(value) -> tuple[str, bool]:
    """(escaped text, is a number) of one cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, bool):
        return ("yes" if value else ""), False
    if isinstance(value, float):
        return f"{value:.4f}", True
    if isinstance(value, int):
        return str(value), True
    return html.escape(str(value)).replace("\r", "").replace("\n", "<br>"), False


def html_table(frame: pd.DataFrame, name: str, row_classes: list[str] | None = None) -> str:
    """``frame`` as ``<table class="aimed" data-table=name>``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        cells = []
        for v in values:
            text, number = cell(v.item() if hasattr(v, "item") else v)
            cells.append(f'<td class="num">{text}</td>' if number else f"<td>{text}</td>")
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f'<table class="aimed" data-table="{html.escape(name)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def show(frame: pd.DataFrame, name: str, row_classes: list[str] | None = None) -> None:
    st.html(f'{STYLE}<div class="aimed-scroll">{html_table(frame, name, row_classes)}</div>')
