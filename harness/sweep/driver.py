"""The sweep's driver: hand the jobs to an executor, record what comes back, keep the score.

**One writer.** The driver alone records runs in the results index, as each job reports.
Several writers would be safe on one machine (SQLite's WAL) or on PostgreSQL, but Ray
workers run on other machines, where an SQLite index is not on their disk or sits on a
network file system (where SQLite's locking cannot be trusted), and a PostgreSQL index
would need its password on every worker. One writer also makes "recorded once" simple:
an executor reports each job once (a Ray task's result is returned once, however many
attempts it took; the local pool reports a job only when it finished or ran out of
attempts), and a report for a job already reported is ignored.

A job that fails is a row of the table; the others go on. Ctrl-C stops the workers and
records nothing more; what was recorded stays, and a rerun skips it.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Union

from tqdm.auto import tqdm

from ..errors import UserError
from ..index import index_fault, record_run_dir, where
from ..owned import kind_of
from .jobs import JobResult, JobSpec, Status
from .plan import LeftOut
from .queue import JobQueue
from .report import Row, counts, row_for


class Executor(Protocol):
    """Runs jobs and calls ``report`` once a job, whatever became of it."""

    def describe(self) -> str: ...

    def run(self, jobs: Union[JobQueue, list[JobSpec]], report) -> None: ...

    def close(self, interrupted: bool = False) -> None: ...


@dataclass
class SweepOutcome:
    rows: list[Row]
    seconds: float
    recorded: list[str] = field(default_factory=list)  # run folders recorded in the index


def run_sweep(specs: list[JobSpec], left_out: list[LeftOut], executor: Executor, db_path: Union[Path, str, None],
              known_runs: dict[str, str], progress: bool = True) -> SweepOutcome:
    """Run every job on ``executor`` and record each scored run in ``db_path`` (an SQLite
    file or a PostgreSQL URL; None: no index). ``known_runs``: fingerprint -> run folder of
    the checkpoints the index holds."""
    started = time.perf_counter()
    rows: dict[int, Row] = {}
    outcome = SweepOutcome([], 0.0)
    bar = tqdm(total=len(specs), desc="sweep", unit="ckpt", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)

    def report(result: JobResult) -> None:
        if result.index in rows:  # reported before: never recorded twice
            return
        if result.status is Status.SCORED and db_path is not None and result.results is not None:
            result = _record(db_path, result, outcome)
        rows[result.index] = row_for(result, known_runs.get(result.fingerprint or ""))
        for line in result.warnings:
            bar.write(f"{result.label}: {line}", file=sys.stderr)
        if result.status is Status.FAILED:
            bar.write(f"{result.label}: failed: {result.reason}", file=sys.stderr)
        n = counts(list(rows.values()))
        bar.set_postfix_str(f"{n[Status.SCORED]} scored, {n[Status.SKIPPED]} skipped, {n[Status.FAILED]} failed")
        bar.update(1)

    interrupted, lost = True, "no result came back from its worker"
    try:
        executor.run(specs, report)
        interrupted = False
    except UserError as exc:  # the executor itself failed (a Ray cluster gone): the table still comes
        lost = exc.message
    finally:
        bar.close()
        executor.close(interrupted=interrupted)
        if specs:
            _tidy(specs, [r.run_dir for r in rows.values() if r.run_dir])
    for spec in specs:  # a job the executor lost is named here rather than nowhere
        if spec.index not in rows:
            rows[spec.index] = Row(spec.label, Status.FAILED, f"failed: {lost}")
    outcome.rows = [Row(x.label, Status.SKIPPED, f"skipped: {x.reason}") for x in left_out]
    outcome.rows += [rows[s.index] for s in specs]
    outcome.seconds = time.perf_counter() - started
    return outcome


def _record(db_path: Union[Path, str], result: JobResult, outcome: SweepOutcome) -> JobResult:
    result = record_result(db_path, result)
    if result.status is Status.SCORED:
        outcome.recorded.append(result.run_dir or "")
    return result


def record_result(db_path: Union[Path, str], result: JobResult) -> JobResult:
    """Record a scored job's run in the index; a fault of the index turns it into a failure
    that says how to record it later."""
    try:
        record_run_dir(db_path, Path(result.run_dir or ""), result.results or {})
    except (sqlite3.Error, OSError, UserError) as exc:
        reason = exc.message if isinstance(exc, UserError) else index_fault(db_path, exc).message
        result.status = Status.FAILED
        result.reason = (f"scored, but not recorded ({reason}); record it with "
                         f"`aimed-eval import {result.run_dir} --db {where(db_path)}`")
    return result


def _tidy(specs: list[JobSpec], run_dirs: list[str]) -> None:
    """Remove the sweep's job logs, and the temporary folders an attempt killed while writing
    its run folder left beside it (``.<run>.partial-<pid>``, holding aimed-eval's run marker)."""
    for run_dir in map(Path, run_dirs):
        for partial in run_dir.parent.glob(f".{run_dir.name}.partial-*"):
            if partial.is_dir() and kind_of(partial) == "run":
                shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(specs[0].log_dir, ignore_errors=True)
