"""The results index: every run recorded in an embedded SQLite database, or, for a team, in
PostgreSQL (``--db postgresql://USER@HOST/DB`` or ``AIMED_DB``; ``index_pg.py``): the
same tables and the same SQL on both.

Leaderboards, reports and the dashboard read it (with ``sqlite3`` alone: nothing here
imports torch). One row a run in ``runs``; its metrics in ``scores`` (groups included,
``is_group`` = 1); per task and group its version, data hash and main metric in
``task_meta``; per-category metrics in ``categories``. A checkpoint is identified by its
fingerprint; its lineage (base model, stage, parent, step) comes from its
``aimed_checkpoint.json`` manifest, else from the run's ``--meta`` labels.

Several processes may record at once: WAL mode, a busy timeout and one ``BEGIN
IMMEDIATE`` transaction a run (on PostgreSQL a transaction holding an advisory lock), so a
run is recorded whole or not at all and writers queue instead of failing. Re-recording a
run id replaces it (imports are idempotent).

The schema has a version (``aimed_schema``, and SQLite's ``user_version``); an index of an
older version is upgraded in place when it is opened (``MIGRATIONS``), one newer than this
code is refused with the upgrade to make.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Optional

from .errors import UserError
from .flag_types import url_refusal, without_password
from .index_pg import PgIndex, is_pg_url, schema_statements, version_of
from .sqlite_wal import enable_wal, remove_database

DB_ENV = "AIMED_DB"
DB_NAME = "aimed_index.sqlite"
SCHEMA_VERSION = 3  # aimed_schema's version (and SQLite's user_version): the layout this code writes
BUSY_MS = 120_000   # writers wait their turn this long before giving up
WAIT_ENV = "AIMED_DB_WAIT_S"  # that wait in seconds, to shorten it (tests, CI)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    run_dir     TEXT NOT NULL,          -- run folder, or the lm-eval results file
    date        REAL NOT NULL,          -- unix time the run started
    source      TEXT NOT NULL,          -- 'aimed' or 'lm-eval'
    model       TEXT NOT NULL,          -- checkpoint path or hub id (plus adapter)
    checkpoint  TEXT NOT NULL,          -- short label for tables
    fingerprint TEXT NOT NULL,          -- checkpoint identity: same fingerprint, same weights
    base_model  TEXT NOT NULL,
    stage       TEXT NOT NULL,          -- base, pt, sft, rm, ppo, dpo, other names, or 'unknown'
    parent      TEXT,                   -- parent checkpoint (path or fingerprint)
    step        INTEGER,                -- training step, when known
    adapter     TEXT,
    tasks       TEXT NOT NULL,          -- JSON list of task and group names
    config      TEXT NOT NULL           -- JSON: results.json's "config"
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL, task TEXT NOT NULL, metric TEXT NOT NULL,
    value REAL, stderr REAL, n INTEGER, higher_is_better INTEGER NOT NULL DEFAULT 1,
    is_group INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task, metric));
CREATE TABLE IF NOT EXISTS task_meta (
    run_id TEXT NOT NULL, task TEXT NOT NULL, version INTEGER, mode TEXT, data_hash TEXT,
    spec_hash TEXT,
    main_metric TEXT NOT NULL,              -- the task's headline metric ('score' for a group, 'predict-only' for none)
    is_group INTEGER NOT NULL DEFAULT 0,
    position INTEGER NOT NULL DEFAULT 0,    -- column order: leaf tasks as run, then groups
    PRIMARY KEY (run_id, task));
CREATE TABLE IF NOT EXISTS categories (
    run_id TEXT NOT NULL, task TEXT NOT NULL, column_name TEXT NOT NULL, category TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL, stderr REAL, n INTEGER,
    PRIMARY KEY (run_id, task, column_name, category, metric));
CREATE INDEX IF NOT EXISTS runs_by_checkpoint ON runs (fingerprint, date);
CREATE INDEX IF NOT EXISTS runs_by_lineage ON runs (base_model, stage);
CREATE INDEX IF NOT EXISTS task_meta_by_task ON task_meta (task);
CREATE INDEX IF NOT EXISTS scores_by_task ON scores (task, metric);
CREATE TABLE IF NOT EXISTS aimed_schema (version INTEGER NOT NULL, upgraded REAL NOT NULL);
"""
# What takes an index of version N to N + 1 (the layout of SCHEMA is version SCHEMA_VERSION).
MIGRATIONS: dict[int, list[str]] = {
    2: ["CREATE INDEX IF NOT EXISTS scores_by_task ON scores (task, metric)",  # leaderboard columns
        "CREATE TABLE IF NOT EXISTS aimed_schema (version INTEGER NOT NULL, upgraded REAL NOT NULL)"],
}
TABLES = ("runs", "scores", "task_meta", "categories")
# task_meta.main_metric of a predict_only task (taskspec.py): it has no metric, and no score
# row ever bears this name (metric names are identifiers), so its leaderboard cell stays
# empty and its column is left out of averages (leaderboards/query.py).
PREDICT_ONLY = "predict-only"
MANIFEST = "aimed_checkpoint.json"


def default_db(output_root: Optional[Path] = None):
    """``$AIMED_DB`` if set (a file, or a PostgreSQL URL), else ``aimed_index.sqlite`` in the output root."""
    if os.environ.get(DB_ENV):
        value = os.environ[DB_ENV]
        if is_pg_url(value):
            return value
        refusal = url_refusal(value)
        if refusal:
            raise UserError(f"{DB_ENV}={refusal}")
        return Path(value).expanduser()
    return Path(output_root or "aimed_runs") / DB_NAME


def where(db_ref) -> str:
    """How messages name an index: its path, or its URL without the password."""
    return without_password(db_ref) if is_pg_url(db_ref) else str(db_ref)


def connect(path, readonly: bool = False):
    """Open (and, writable, create or upgrade) the index: an SQLite file, or a PostgreSQL
    database named by URL. One that is not an index is a UserError."""
    if is_pg_url(path):
        return _connect_pg(str(path), readonly)
    refusal = url_refusal(str(path))
    if refusal:
        raise UserError(refusal)
    path = Path(path)
    if readonly:
        if not path.is_file():
            raise UserError(f"{path}: no results index there; record runs with `aimed-eval run` or "
                            f"`aimed-eval import`, or point --db / {DB_ENV} at the index")
        db = _open_ro(path)
        version = _sqlite_version(db, path)
        if version is not None and version < SCHEMA_VERSION and version in MIGRATIONS:
            db.close()  # an older index: upgraded in place (a write), then read
            connect(path).close()
            db = _open_ro(path)
        check_index(db, path)
        return db
    if path.is_dir():
        raise UserError(f"--db {path}: is a folder; give the index file's path, e.g. {path / DB_NAME}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--db {path}: cannot create its folder ({exc.strerror}); choose a folder you can "
                        "write to") from None
    is_new = not path.exists()
    try:
        db = sqlite3.connect(path, timeout=wait_seconds(), isolation_level=None)
    except sqlite3.Error as exc:
        raise index_fault(path, exc) from None
    try:
        db.execute(f"PRAGMA busy_timeout={int(wait_seconds() * 1000)}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            _create(db, path)
        enable_wal(db, timeout_s=wait_seconds())
    except sqlite3.OperationalError as exc:  # locked past the timeout, read-only folder, full disk
        db.close()
        if is_new and "locked" not in str(exc) and "busy" not in str(exc):  # no empty index left
            remove_database(path)
        raise index_fault(path, exc) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UserError(f"{path}: not a results index ({exc}); give --db a new file or an index "
                        "that aimed-eval wrote") from None
    except UserError:
        db.close()
        raise
    return db


def _open_ro(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=wait_seconds())
    db.execute(f"PRAGMA busy_timeout={int(wait_seconds() * 1000)}")
    return db


def _sqlite_version(db: sqlite3.Connection, path: Path) -> Optional[int]:
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError:
        return None  # check_index says what is wrong with the file


def _connect_pg(url: str, readonly: bool) -> PgIndex:
    db = PgIndex(url, readonly=readonly, timeout_s=min(10.0, wait_seconds()))
    try:
        version = version_of(db)
        if version != SCHEMA_VERSION:
            if readonly and version is not None and version < SCHEMA_VERSION:
                db.close()
                connect(url).close()  # upgraded by a writable connection, then read
                db = PgIndex(url, readonly=True, timeout_s=min(10.0, wait_seconds()))
            elif readonly:
                _refuse(db.url, version, db.tables())
            else:
                _create(db, db.url)
    except BaseException:
        db.close()
        raise
    return db


def _refuse(name: str, version: Optional[int], tables: set) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise UserError(f"{name}: the results index has schema {version}, newer than this aimed-eval's "
                        f"{SCHEMA_VERSION}; upgrade aimed-eval (pip install -U aimed-eval) to use it")
    if version is None and not tables:
        raise UserError(f"{name}: no results index there yet; record runs with `aimed-eval run --db {name}`")
    raise UserError(f"{name}: not a results index of this aimed-eval (tables {', '.join(sorted(tables)) or 'none'}, "
                    f"schema {version}); give --db a database of its own")


def wait_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get(WAIT_ENV) or BUSY_MS / 1000))
    except ValueError:
        return BUSY_MS / 1000


def index_fault(path, exc: BaseException) -> UserError:
    """One line for an index that is locked, read-only or on a full disk."""
    if isinstance(exc, UserError):
        return exc
    text = str(exc)
    path = where(path)
    if "locked" in text or "busy" in text:
        return UserError(f"{path}: the results index is locked by another process (waited "
                         f"{wait_seconds():.0f} s); retry when that process has finished")
    return UserError(f"{path}: cannot write to the results index ({text}); free some space or check "
                     "the file's permissions")


def begin_write(db) -> None:
    """``BEGIN IMMEDIATE``, saying once on stderr that it waits when another process holds
    the index (SQLite's busy timeout then waits out the rest; PostgreSQL's writers queue on
    the advisory lock)."""
    if isinstance(db, PgIndex):
        db.execute("BEGIN IMMEDIATE")
        return
    db.execute("PRAGMA busy_timeout=1000")
    try:
        db.execute("BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise
    finally:
        db.execute(f"PRAGMA busy_timeout={int(wait_seconds() * 1000)}")
    path = db.execute("PRAGMA database_list").fetchone()[2]
    print(f"aimed-eval: {path}: another process is writing the results index; waiting up to "
          f"{wait_seconds():.0f} s", file=sys.stderr)
    db.execute("BEGIN IMMEDIATE")


def rollback(db) -> None:
    """Undo the open transaction; a connection already lost has nothing left to undo."""
    try:
        db.execute("ROLLBACK")
    except (sqlite3.Error, UserError):
        pass


def _create(db, name) -> None:
    """Create the tables, or upgrade an older index, once: writers racing here queue on the
    write lock, and the second finds the work done."""
    import time

    begin_write(db)
    try:
        pg = isinstance(db, PgIndex)
        tables = db.tables() if pg else {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = version_of(db) if pg else db.execute("PRAGMA user_version").fetchone()[0]
        if not pg and version == 0 and not tables:
            version = None  # a new file
        if version is None and tables - {"aimed_schema"}:
            _refuse(str(name), version, tables)
        if version is not None and version > SCHEMA_VERSION:
            _refuse(str(name), version, tables)
        if version is None:
            for stmt in (schema_statements(SCHEMA) if pg else SCHEMA.split(";")):
                if stmt.strip():
                    db.execute(stmt)
        elif version < SCHEMA_VERSION:
            if version not in MIGRATIONS:
                _refuse(str(name), version, tables)
            for step in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[step]:
                    db.execute(schema_statements(stmt)[0] if pg else stmt)
        if version != SCHEMA_VERSION:
            db.execute("INSERT INTO aimed_schema (version, upgraded) VALUES (?, ?)", (SCHEMA_VERSION, time.time()))
            if not pg:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def check_index(db, path) -> None:
    if isinstance(db, PgIndex):
        version = version_of(db)
        if version != SCHEMA_VERSION:
            db.close()
            _refuse(db.url, version, set())
        return
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.OperationalError as exc:  # locked, unreadable: not a verdict on the file
        db.close()
        raise index_fault(path, exc) from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise UserError(f"{path}: not a results index ({exc}); point --db at the "
                        f"{DB_NAME} that `aimed-eval run` wrote") from None
    if version > SCHEMA_VERSION and set(TABLES) <= names:
        db.close()
        _refuse(str(path), version, names)
    if version != SCHEMA_VERSION or not set(TABLES) <= names:
        db.close()
        raise UserError(f"{path}: not a results index of this aimed-eval (tables {sorted(names)}, "
                        f"schema {version}); point --db at the {DB_NAME} that `aimed-eval run` wrote")


def checkpoint_label(model: str, adapter: Optional[str] = None) -> str:
    """A short name for tables: the adapter's or model's folder name; a trainer's
    ``checkpoint-N`` folder keeps its parent's name too, so stages stay apart."""
    p = Path(str(adapter or model).rstrip("/"))
    name = p.name or str(p)
    if name.startswith("checkpoint") and p.parent.name:
        name = f"{p.parent.name}/{name}"
    return name if not adapter else f"{Path(model.rstrip('/')).name}+{name}"


def lineage(aimed: dict) -> dict:
    """base_model / stage / parent / step: the manifest first, then --meta, then defaults."""
    model = aimed.get("model", {})
    manifest = model.get("manifest") or {}
    meta = aimed.get("meta") or {}
    args = model.get("args", {})
    name = Path(str(args.get("model", "?")).rstrip("/")).name
    pick = lambda key, default=None: manifest.get(key, meta.get(key, default))  # noqa: E731
    step = pick("step")
    return {"base_model": str(pick("base_model", name)), "stage": str(pick("stage", "unknown")),
            "parent": None if pick("parent") is None else str(pick("parent")),
            "step": int(step) if isinstance(step, (int, float, str)) and str(step).isdigit() else None}


def score_rows(run_id: str, results: dict, scored: Optional[dict] = None) -> list[tuple]:
    """One row a (task, metric) of results.json's ``results``. A filter other than lm-eval's
    ``none`` stays in the metric's name (``exact_match,strict-match``): two filters of one
    metric are two scores."""
    groups = set(results.get("groups", {}))
    hib = results.get("higher_is_better", {})
    n_samples = results.get("n-samples", {})
    rows = []
    for task, block in results.get("results", {}).items():
        for key, value in block.items():
            if "," not in key or "_stderr" in key:
                continue
            metric, filt = key.split(",", 1)
            name = metric if filt == "none" else key
            se = block.get(f"{metric}_stderr,{filt}")
            n = (scored or {}).get(task, {}).get(metric, (n_samples.get(task) or {}).get("effective"))
            rows.append((run_id, task, name, _float(value), _float(se), n,
                         int(bool((hib.get(task) or {}).get(metric, True))), int(task in groups)))
    return rows


def record(db, run: dict, scores: list[tuple], metas: list[tuple],
           cats: list[tuple]) -> str:
    """Write one run whole, in one transaction, replacing an earlier record of its id."""
    run_id = run["run_id"]
    cols = ("run_id", "run_dir", "date", "source", "model", "checkpoint", "fingerprint", "base_model",
            "stage", "parent", "step", "adapter", "tasks", "config")
    begin_write(db)
    try:
        for table in TABLES:  # a replaced record goes whole (no INSERT OR REPLACE: PostgreSQL has none)
            db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
        db.execute(f"INSERT INTO runs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                   tuple(run[c] for c in cols))
        db.executemany("INSERT INTO scores VALUES (?,?,?,?,?,?,?,?)", scores)
        db.executemany("INSERT INTO task_meta VALUES (?,?,?,?,?,?,?,?,?)", metas)
        db.executemany("INSERT INTO categories VALUES (?,?,?,?,?,?,?,?)", cats)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    if isinstance(db, PgIndex):
        db.refresh_statistics()
    return run_id


def record_run(db, run_dir: Path, results: dict) -> str:
    """Record one run folder written by ``aimed-eval run``; returns its run id."""
    aimed = results.get("aimed", {})
    run_id = aimed["run_id"]
    model = aimed.get("model", {})
    args = model.get("args", {})
    adapter = (args.get("lora_model") or [None])[0]
    lin = lineage(aimed)
    tasks = aimed.get("tasks", {})
    configs = results.get("configs", {})
    groups = list(results.get("groups", {}))
    metas = []
    predicted = aimed.get("predict_only") or {}
    for pos, (t, m) in enumerate(tasks.items()):
        cfg = configs.get(t) or {}
        if t in predicted or cfg.get("predict_only"):
            main = PREDICT_ONLY
        else:
            main = m.get("main_metric") or cfg.get("primary_metric") or (cfg.get("metrics") or ["acc"])[0]
        metas.append((run_id, t, m.get("version"), m.get("mode"), m.get("data_hash"), m.get("spec_hash"),
                      main, 0, pos))
    for pos, g in enumerate(groups, start=len(metas)):
        # a group of predict_only tasks alone has no score (results.group_blocks_for)
        scored = any("," in key for key in (results["groups"][g] or {}))
        metas.append((run_id, g, (results.get("versions") or {}).get(g), None, None, None,
                      "score" if scored else PREDICT_ONLY, 1, pos))
    cats = []
    for task, columns in aimed.get("categories", {}).items():
        for column, cells in columns.items():
            for category, cell in cells.items():
                for metric, value in cell.items():
                    if metric == "n" or metric.endswith("_stderr"):
                        continue
                    cats.append((run_id, task, column, category, metric, _float(value),
                                 _float(cell.get(f"{metric}_stderr")), cell.get("n")))
    label = str(args.get("model", "?")) + (f"+{adapter}" if adapter else "")
    run = {"run_id": run_id, "run_dir": str(Path(run_dir).resolve()), "date": float(results.get("date") or 0),
           "source": "aimed", "model": label, "checkpoint": checkpoint_label(str(args.get("model", "?")), adapter),
           # no fingerprint (an old run folder): the model and adapter names stand in for it
           "fingerprint": model.get("fingerprint") or f"model:{label}", **lin, "adapter": adapter,
           "tasks": json.dumps([*tasks, *groups]),
           "config": json.dumps(results.get("config", {}), ensure_ascii=False, default=str)}
    return record(db, run, score_rows(run_id, results, aimed.get("scored")), metas, cats)


def record_run_dir(db_path, run_dir: Path, results: dict) -> str:
    """Open the index at ``db_path``, record the run, close it."""
    db = connect(db_path)
    try:
        return record_run(db, run_dir, results)
    finally:
        db.close()


def forget_runs_under(db_path: Path, folder: Path) -> int:
    """Remove from the index every run whose run folder lies inside ``folder`` (a training
    stage being redone deletes its checkpoints and their runs); returns how many."""
    if not is_pg_url(db_path) and not Path(db_path).is_file():
        return 0
    prefix = str(Path(folder).resolve()).rstrip("/") + "/"
    db = connect(db_path if is_pg_url(db_path) else Path(db_path))
    try:
        begin_write(db)
        try:
            ids = [r[0] for r in db.execute("SELECT run_id FROM runs WHERE substr(run_dir, 1, ?) = ?",
                                            (len(prefix), prefix))]
            for table in TABLES:
                db.executemany(f"DELETE FROM {table} WHERE run_id=?", [(i,) for i in ids])
            db.execute("COMMIT")
        except BaseException:
            rollback(db)
            raise
        return len(ids)
    finally:
        db.close()


def _float(x) -> Optional[float]:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if v != v else v  # NaN -> NULL
