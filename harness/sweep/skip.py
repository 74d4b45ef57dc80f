"""What the results index already holds: the skip check of a sweep.

A checkpoint is skipped when the index holds, for every task of the sweep, a run of a
model with the checkpoint's fingerprint on that task's data (``task_meta.data_hash``) and
spec (``spec_hash``), in the same mode, on the same ``--limit`` and ``--seed``, and, where
the run folder can be read, with the same number of few-shot examples and CircularEval
setting. The tasks may come from several earlier runs. A checkpoint that lacks any one of
them is scored again on all of them (one run folder a checkpoint, group scores included);
the response cache makes the tasks it had computed cost nothing.

The driver reads the index once (:func:`scored_fingerprints`) and hands the set of
fingerprints to every job; the job compares it with the fingerprint it computes (see
``jobs.py`` for why the fingerprint is computed there and not here).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Optional, Union

from ..index import connect, index_fault
from ..index_pg import is_pg_url
from ..runner import RunOptions, is_circular, task_mode
from ..taskregistry import Task


def task_expectations(tasks: list[Task], opts: RunOptions) -> dict[str, dict]:
    """Per task, what a recorded run must match to count: data and spec hashes, mode,
    few-shot count and CircularEval."""
    return {t.name: {"data_hash": t.data_hash, "spec_hash": t.spec_hash, "mode": str(task_mode(t, opts.mode)),
                     "n_shot": t.spec.num_fewshot if opts.num_fewshot is None else opts.num_fewshot,
                     "circular": bool(is_circular(t, opts))}
            for t in tasks}


def task_key(task_names: list[str], tasks: list[Task], opts: RunOptions) -> str:
    """A short hash of what the sweep asks of each checkpoint (tasks as named, their data,
    specs and options): part of each run folder's name, so sweeps of other tasks or
    options never share a folder."""
    blob = json.dumps([task_names, task_expectations(tasks, opts), opts.limit, opts.seed], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def scored_fingerprints(db_path: Union[Path, str, None], tasks: list[Task], opts: RunOptions) -> dict[str, str]:
    """Fingerprint -> run folder (the latest run found) of every model the index (an SQLite
    file or a PostgreSQL URL) holds with all of ``tasks`` scored as this sweep would score
    them. No index yet: none."""
    if db_path is None or (not is_pg_url(db_path) and not Path(db_path).is_file()):
        return {}
    want = task_expectations(tasks, opts)
    db = connect(db_path, readonly=True)
    try:
        marks = ",".join("?" * len(want))
        rows = db.execute(
            "SELECT r.fingerprint, r.run_dir, r.config, t.task, t.data_hash, t.spec_hash, t.mode "
            f"FROM runs r JOIN task_meta t ON t.run_id = r.run_id WHERE t.is_group = 0 AND t.task IN ({marks}) "
            "ORDER BY r.date", list(want)).fetchall()
    except sqlite3.Error as exc:
        raise index_fault(db_path, exc) from None
    finally:
        db.close()
    covered: dict[str, set[str]] = {}
    latest: dict[str, str] = {}
    folders: dict[str, Optional[dict]] = {}
    for row in rows:  # by position: sqlite3's tuples and the PostgreSQL layer's rows alike
        fingerprint, run_dir, config, task, data_hash, spec_hash, mode = (row[i] for i in range(7))
        expect = want[task]
        if (data_hash, spec_hash, mode) != (expect["data_hash"], expect["spec_hash"], expect["mode"]):
            continue
        if not _same_config(config, opts) or not _same_options(run_dir, task, expect, folders):
            continue
        covered.setdefault(fingerprint, set()).add(task)
        latest[fingerprint] = run_dir
    return {fp: latest[fp] for fp, done in covered.items() if done >= set(want)}


def _same_config(config: str, opts: RunOptions) -> bool:
    try:
        cfg = json.loads(config)
    except ValueError:
        return False
    return cfg.get("limit") == opts.limit and cfg.get("random_seed", opts.seed) == opts.seed


def _same_options(run_dir: str, task: str, expect: dict, folders: dict[str, Optional[dict]]) -> bool:
    """Few-shot count and CircularEval are in the run folder, not the index: checked where
    the folder can be read (a folder on another machine, or removed, is taken on trust)."""
    if run_dir not in folders:
        try:
            folders[run_dir] = json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            folders[run_dir] = None
    results = folders[run_dir]
    if not isinstance(results, dict):
        return True
    n_shot = (results.get("n-shot") or {}).get(task, expect["n_shot"])
    circular = task in (((results.get("aimed") or {}).get("options") or {}).get("circular") or [])
    return n_shot == expect["n_shot"] and circular == expect["circular"]
