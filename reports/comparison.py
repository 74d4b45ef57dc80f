"""Which two runs the report's comparison section compares, and the comparison itself.

``--compare RUN_A RUN_B`` names them (run folders or run ids of the index). Without it
the report compares the best checkpoint (highest headline number, ``Row.average``: the
suite score, or the mean of the columns without a suite, among the filtered rows)
with its parent checkpoint's latest run; when the best checkpoint's parent has no run in
the index, the best checkpoint whose parent does have one, and the note says so.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError


def resolve_run(db: sqlite3.Connection, name: str) -> Path:
    """A run folder (holding results.json) or a run id recorded in the index."""
    path = Path(name)
    if path.is_dir():
        return path
    row = db.execute("SELECT run_dir FROM runs WHERE run_id=?", (name,)).fetchone()
    if row is None:
        raise UserError(f"--compare: {name} is neither a run folder nor a run id in the index; "
                        "give a folder written by `aimed-eval run` or an id from `aimed-eval leaderboard`")
    return Path(row[0])


def _same_checkpoint(parent: str, run: dict) -> bool:
    if parent in (run["fingerprint"], run["run_id"], run["model"]):
        return True
    try:
        return Path(parent).expanduser().resolve() == Path(run["model"]).expanduser().resolve()
    except (OSError, ValueError):
        return False


def parent_run(db: sqlite3.Connection, parent: Optional[str]) -> Optional[dict]:
    """The latest run of the parent checkpoint (named by fingerprint, run id or path)."""
    if not parent:
        return None
    cursor = db.execute("SELECT run_id, run_dir, model, fingerprint, date FROM runs ORDER BY date DESC")
    names = [d[0] for d in cursor.description]
    for values in cursor:  # PostgreSQL's rows are dicts already (iterating one gives its names)
        run = dict(values) if isinstance(values, dict) else dict(zip(names, values))
        if _same_checkpoint(str(parent), run):
            return run
    return None


def default_pair(db: sqlite3.Connection, board) -> tuple[Optional[tuple[Path, Path]], str]:
    ranked = sorted((r for r in board.rows if r.average is not None), key=lambda r: -r.average)
    if not ranked:
        return None, "No comparison: no checkpoint has a headline score (suite score or average) to rank by; give --compare RUN_A RUN_B."
    best = ranked[0]
    for row in ranked:
        parent = parent_run(db, row.parent)
        if parent is None or parent["run_id"] == row.run_id:
            continue
        why = ("the best checkpoint" if row is best else
               f"the best checkpoint whose parent has a run ({best.base_model} {best.checkpoint}, the best of all, "
               "has no parent run in the index)")
        what = f"{board.headline} suite score" if getattr(board, "headline", None) else "average"
        note = (f"Compared by default: {row.base_model} {row.checkpoint} (run {row.run_id}, {what} "
                f"{row.average:.4f}), {why}, against its parent {row.parent} (run {parent['run_id']}).")
        return (Path(parent["run_dir"]), Path(row.run_dir)), note
    return None, ("No comparison: no checkpoint in the report has a parent with a run in the index; "
                  "give --compare RUN_A RUN_B.")


def choose_comparison(db: sqlite3.Connection, board, compare: Optional[tuple[str, str]]
                      ) -> tuple[Optional[dict], str]:
    """(Comparison.to_dict() or None, a sentence saying what was compared and why)."""
    from aimed.harness.compare import compare_runs

    if compare:
        run_a, run_b = (resolve_run(db, name) for name in compare)
        return compare_runs(run_a, run_b).to_dict(), f"Compared as asked (--compare): {run_a} → {run_b}."
    pair, note = default_pair(db, board)
    if pair is None:
        return None, note
    try:
        return compare_runs(*pair).to_dict(), note
    except UserError as exc:  # e.g. the parent was scored on other data: say so, keep the report
        return None, f"{note} The comparison was refused: {exc.message}"

