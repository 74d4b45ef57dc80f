"""The results index: every run recorded in an embedded SQLite database.

Leaderboards, reports and the dashboard read it (with ``sqlite3`` alone: nothing here
imports torch). One row a run in ``runs``; its metrics in ``scores`` (groups included,
``is_group`` = 1); task versions and data hashes in ``task_meta``; per-category metrics
in ``categories``. A checkpoint is identified by its fingerprint; its lineage (base
model, stage, parent, step) comes from its ``aimed_checkpoint.json`` manifest, else from
the run's ``--meta`` labels.

Several processes may record at once: WAL mode, a busy timeout and one transaction a
run, so a run is recorded whole or not at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Optional

DB_ENV = "AIMED_DB"
DB_NAME = "aimed_index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    run_dir     TEXT NOT NULL,
    date        REAL NOT NULL,          -- unix time the run started
    source      TEXT NOT NULL,          -- 'aimed' or 'lm-eval'
    model       TEXT NOT NULL,          -- checkpoint path or hub id (plus adapter)
    fingerprint TEXT NOT NULL,          -- checkpoint identity: same fingerprint, same weights
    base_model  TEXT NOT NULL,
    stage       TEXT NOT NULL,          -- pt, sft, rm, ppo, dpo, base, or 'unknown'
    parent      TEXT,                   -- parent checkpoint (path or fingerprint)
    step        INTEGER,                -- training step, when known
    adapter     TEXT,
    tasks       TEXT NOT NULL,          -- JSON list of task names
    config      TEXT NOT NULL           -- JSON: results.json's "config"
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL, task TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL, stderr REAL, n INTEGER, higher_is_better INTEGER NOT NULL DEFAULT 1,
    is_group INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task, metric));
CREATE TABLE IF NOT EXISTS task_meta (
    run_id TEXT NOT NULL, task TEXT NOT NULL, version INTEGER, mode TEXT, data_hash TEXT, spec_hash TEXT,
    PRIMARY KEY (run_id, task));
CREATE TABLE IF NOT EXISTS categories (
    run_id TEXT NOT NULL, task TEXT NOT NULL, column_name TEXT NOT NULL, category TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL, stderr REAL, n INTEGER,
    PRIMARY KEY (run_id, task, column_name, category, metric));
CREATE INDEX IF NOT EXISTS scores_by_task ON scores (task, metric);
CREATE INDEX IF NOT EXISTS runs_by_checkpoint ON runs (fingerprint, date);
"""


def default_db(output_root: Optional[Path] = None) -> Path:
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV]).expanduser()
    return Path(output_root or "aimed_runs") / DB_NAME


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
    db.execute("PRAGMA busy_timeout=60000")
    return db


def lineage(aimed: dict) -> dict:
    """base_model / stage / parent / step: the manifest first, then --meta, then defaults."""
    model = aimed.get("model", {})
    manifest = model.get("manifest") or {}
    meta = aimed.get("meta") or {}
    args = model.get("args", {})
    name = Path(str(args.get("model", "?")).rstrip("/")).name
    pick = lambda key, default=None: manifest.get(key, meta.get(key, default))  # noqa: E731
    return {"base_model": pick("base_model", name), "stage": pick("stage", "unknown"),
            "parent": pick("parent"), "step": pick("step")}


def record_run(db: sqlite3.Connection, run_dir: Path, results: dict) -> str:
    """Record one run folder written by ``aimed-eval run``; returns its run id."""
    aimed = results.get("aimed", {})
    run_id = aimed["run_id"]
    model = aimed.get("model", {})
    args = model.get("args", {})
    label = str(args.get("model", "?")) + (f"+{args['lora_model'][0]}" if args.get("lora_model") else "")
    lin = lineage(aimed)
    groups = set(results.get("groups", {}))
    hib = results.get("higher_is_better", {})
    scored = aimed.get("scored", {})
    n_samples = results.get("n-samples", {})
    score_rows = []
    for task, block in results.get("results", {}).items():
        for key, value in block.items():
            if "," not in key or "_stderr" in key:
                continue
            metric = key.split(",")[0]
            se = block.get(f"{metric}_stderr,{key.split(',', 1)[1]}")
            n = scored.get(task, {}).get(metric, n_samples.get(task, {}).get("effective"))
            score_rows.append((run_id, task, metric, _float(value), _float(se), n,
                               int(hib.get(task, {}).get(metric, True)), int(task in groups)))
    meta_rows = [(run_id, t, m.get("version"), m.get("mode"), m.get("data_hash"), m.get("spec_hash"))
                 for t, m in aimed.get("tasks", {}).items()]
    cat_rows = []
    for task, columns in aimed.get("categories", {}).items():
        for column, cells in columns.items():
            for category, cell in cells.items():
                for metric, value in cell.items():
                    if metric == "n" or metric.endswith("_stderr"):
                        continue
                    cat_rows.append((run_id, task, column, category, metric, _float(value),
                                     _float(cell.get(f"{metric}_stderr")), cell.get("n")))
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM scores WHERE run_id=?", (run_id,))
        db.execute("DELETE FROM task_meta WHERE run_id=?", (run_id,))
        db.execute("DELETE FROM categories WHERE run_id=?", (run_id,))
        db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (run_id, str(Path(run_dir).resolve()), float(results.get("date") or 0), "aimed", label,
                    model.get("fingerprint", ""), lin["base_model"], lin["stage"], lin["parent"], lin["step"],
                    (args.get("lora_model") or [None])[0], json.dumps(sorted(aimed.get("tasks", {}))),
                    json.dumps(results.get("config", {}), ensure_ascii=False, default=str)))
        db.executemany("INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)", score_rows)
        db.executemany("INSERT INTO task_meta VALUES (?,?,?,?,?,?)", meta_rows)
        db.executemany("INSERT INTO categories VALUES (?,?,?,?,?,?,?,?)", cat_rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return run_id


def _float(x) -> Optional[float]:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if v != v else v  # NaN -> NULL
