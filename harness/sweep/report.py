"""The sweep's final table and its one-line verdict.

One row a checkpoint found: its label, what became of it (``scored``, ``skipped: ...``,
``failed: <reason>``), its run folder and the seconds its job took. Failures are named in
full, never cut, since the table is where a user learns what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .jobs import JobResult, Status


@dataclass
class Row:
    label: str
    status: Status
    text: str  # the status column
    run_dir: str = ""
    seconds: Optional[float] = None


def row_for(result: JobResult, known_run: Optional[str] = None) -> Row:
    """The table row of a job's result; ``known_run``: the run folder the index holds for a
    skipped checkpoint."""
    if result.status is Status.FAILED:
        text = f"failed: {result.reason}"
    elif result.status is Status.SKIPPED:
        text = f"skipped: {result.reason}"
    else:
        notes = [f"attempt {result.attempt}"] if result.attempt > 1 else []
        notes += [result.reason] if result.reason else []
        text = "scored" + (f" ({'; '.join(notes)})" if notes else "")
    run_dir = result.run_dir or known_run or ""
    return Row(result.label, result.status, text, run_dir, result.seconds)


def table(rows: list[Row]) -> str:
    """Status last: a failure's reason runs as long as it needs without widening the rest."""
    head = ("checkpoint", "seconds", "run folder", "status")
    cells = [(r.label, "—" if r.seconds is None else f"{r.seconds:.1f}", r.run_dir or "—", r.text) for r in rows]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(3)]

    def line(cell: tuple) -> str:
        return "  ".join([cell[0].ljust(widths[0]), cell[1].rjust(widths[1]), cell[2].ljust(widths[2]), cell[3]])

    lines = [line(head), *map(line, cells)]
    return "\n".join([lines[0], "-" * min(max(map(len, lines)), 120), *lines[1:]])


def counts(rows: list[Row]) -> dict[Status, int]:
    return {s: sum(1 for r in rows if r.status is s) for s in Status}


def verdict(rows: list[Row], seconds: float) -> str:
    n = counts(rows)
    return (f"{len(rows)} checkpoint(s): {n[Status.SCORED]} scored, {n[Status.SKIPPED]} skipped, "
            f"{n[Status.FAILED]} failed, in {seconds:.1f} s")


def failure_line(rows: list[Row]) -> Optional[str]:
    """The error line of a sweep with failures (exit 2), or None."""
    failed = [r.label for r in rows if r.status is Status.FAILED]
    if not failed:
        return None
    shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    return f"sweep: {len(failed)} of {len(rows)} checkpoint(s) failed ({shown}); the table above says why"
