"""The dashboard's data: index queries and run-folder reads, cached by streamlit.

Every cached function takes the index path plus its ``version`` (the modification times
of the database and its WAL file), so a run recorded while the dashboard is open shows on
the next rerun, and an unchanged index is read once. Results are plain dicts and lists
(pickled by ``st.cache_data``); each cache miss opens its own read-only connection, since
streamlit runs sessions on other threads than the one a connection was made on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Optional

import streamlit as st

from aimed.harness import flag_types
from aimed.harness.errors import UserError
from aimed.harness.index_pg import is_pg_url
from aimed.harness.index import DB_ENV, default_db
from aimed.leaderboards import query

from . import samples


def db_path_from_argv(argv: list[str]) -> Path:
    """``--db PATH`` after ``streamlit run app.py --``, else ``AIMED_DB``, else the default."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", type=flag_types.db_path)
    ns, _ = parser.parse_known_args(argv)
    db = ns.db or default_db()  # AIMED_DB: a file, or a PostgreSQL URL
    return db if is_pg_url(db) else Path(db).expanduser()


def index_version(db_path: Path) -> tuple:
    """Changes whenever a run is recorded (WAL mode writes to ``-wal`` first; on PostgreSQL,
    the runs' count and latest date)."""
    if is_pg_url(db_path):
        db = query.open_index(db_path)
        try:
            row = db.execute("SELECT count(*), max(date) FROM runs").fetchone()
            return row[0], row[1]
        finally:
            db.close()
    stamps = []
    for p in (Path(db_path), Path(f"{db_path}-wal")):
        try:
            st_ = p.stat()
            stamps.append((st_.st_mtime_ns, st_.st_size))
        except FileNotFoundError:
            stamps.append(None)
    return tuple(stamps)


def check_index(db_path: Path) -> Optional[str]:
    """None if the index opens, else the one-line message saying what is wrong."""
    try:
        query.open_index(db_path).close()
    except UserError as exc:
        return exc.message
    return None


def _plain(row) -> dict:
    if dataclasses.is_dataclass(row):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    if hasattr(row, "_asdict"):
        return dict(row._asdict())
    return dict(row) if isinstance(row, dict) else dict(vars(row))


def _or_none(values) -> Optional[list]:
    return list(values) if values else None


@st.cache_data(show_spinner=False, max_entries=32)
def leaderboard(db_path: str, version: tuple, base_models: tuple = (), stages: tuple = (),
                tasks: tuple = ()) -> dict:
    """{"tasks": [...], "metrics": {task: main metric}, "groups": [...], "rows": [Row as a
    dict, ...]} for these filters (empty = all)."""
    db = query.open_index(db_path)
    try:
        board = query.leaderboard(db, base_models=_or_none(base_models), stages=_or_none(stages),
                                  tasks=_or_none(tasks))
    finally:
        db.close()
    return {"tasks": list(board.tasks), "metrics": dict(board.metrics), "groups": list(board.groups),
            "headline": board.headline, "members": dict(board.members), "rows": [_plain(r) for r in board.rows]}


@st.cache_data(show_spinner=False, max_entries=32)
def progression(db_path: str, version: tuple, base_models: tuple = (), tasks: tuple = ()) -> list[dict]:
    db = query.open_index(db_path)
    try:
        return [dict(r) for r in query.progression(db, base_models=_or_none(base_models),
                                                   tasks=_or_none(tasks))]
    finally:
        db.close()


@st.cache_data(show_spinner=False, max_entries=64)
def category_scores(db_path: str, version: tuple, run_id: str) -> list[dict]:
    db = query.open_index(db_path)
    try:
        return [dict(r) for r in query.category_scores(db, run_id)]
    finally:
        db.close()


@st.cache_data(show_spinner=False, max_entries=64)
def robustness(db_path: str, version: tuple, run_id: str, main_metrics: tuple) -> list[dict]:
    """``leaderboards.robustness`` rows of one run; ``main_metrics``: (task, metric) pairs."""
    from aimed.leaderboards.robustness import robustness as rows

    db = query.open_index(db_path)
    try:
        return rows(db, [run_id], dict(main_metrics))
    finally:
        db.close()


@st.cache_data(show_spinner=False, max_entries=64)
def run_info(db_path: str, version: tuple, run_id: str) -> dict:
    db = query.open_index(db_path)
    try:
        return dict(query.run_info(db, run_id))
    finally:
        db.close()


def _folder_version(run_dir: str) -> tuple:
    """Run folders can be re-scored in place (``aimed-eval score``): key caches on their files."""
    stamps = []
    for p in sorted(Path(run_dir).glob("*.json*")):
        stamps.append((p.name, p.stat().st_mtime_ns))
    return tuple(stamps)


@st.cache_data(show_spinner=False, max_entries=16)
def _comparison(run_a: str, run_b: str, stamps: tuple) -> dict:
    from aimed.harness.compare import compare_runs  # torch-free (brief); imported when first used

    try:
        return compare_runs(Path(run_a), Path(run_b)).to_dict()
    except UserError as exc:
        return {"error": exc.message}


def comparison(run_a: str, run_b: str) -> dict:
    """``compare_runs(a, b).to_dict()``, or {"error": message} for runs that cannot be compared."""
    return _comparison(run_a, run_b, (_folder_version(run_a), _folder_version(run_b)))


@st.cache_data(show_spinner=False, max_entries=32)
def _items(path: str, mtime: int, metric: Optional[str]) -> list[dict]:
    return samples.load_items(Path(path), metric)


def items(run_dir: str, task: str, metric: Optional[str] = None) -> list[dict]:
    """A run's items for one task (see ``samples.load_items``), cached per file version."""
    path = samples.samples_file(Path(run_dir), task)
    return _items(str(path), path.stat().st_mtime_ns, metric)


@st.cache_data(show_spinner=False, max_entries=64)
def _manifest(path: str, mtime: int) -> dict:
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    manifest = ((data.get("aimed") or {}).get("model") or {}).get("manifest") if isinstance(data, dict) else None
    return manifest if isinstance(manifest, dict) else {}


def manifest(run_dir: str) -> dict:
    """The checkpoint manifest a run recorded (results.json's ``aimed.model.manifest``), {} if none."""
    path = Path(run_dir) / "results.json"
    try:
        return _manifest(str(path), path.stat().st_mtime_ns)
    except OSError:
        return {}


def checkpoint_label(row: dict) -> str:
    """How a checkpoint is named in pickers: label, base model / stage / step, run id."""
    step = f" step {row['step']}" if row.get("step") is not None else ""
    return f"{row['checkpoint']} · {row['base_model']}/{row['stage']}{step} · {row['run_id']}"
