"""The response cache: SQLite, keyed by the model's fingerprint and the request.

Every batch's answers are committed as soon as they are computed, so a killed run
resumes where it stopped, and a rerun of an unchanged checkpoint computes nothing.
The fingerprint covers weights, adapter, tokenizer, template and dtype, so two
different checkpoints never share an answer. WAL mode lets several runs share one file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import UserError
from .sqlite_wal import enable_wal, remove_database

CACHE_ENV = "AIMED_CACHE"
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    model TEXT NOT NULL, request TEXT NOT NULL, response TEXT NOT NULL,
    PRIMARY KEY (model, request)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (path, size, mtime_ns)) WITHOUT ROWID;
"""


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, "~/.cache/aimed-eval")).expanduser()


def request_key(kind: str, payload: Any) -> str:
    blob = json.dumps([kind, payload], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """The cache file in ``folder``. A damaged file (truncated, overwritten, not SQLite) is
    found at open by SQLite's ``quick_check``, moved aside with a warning and replaced by a
    fresh cache, so the run goes on and only recomputes answers."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "responses.sqlite"
        made = [p for p in (Path(folder), self.path) if not p.exists()]  # removed again on a fault
        try:
            self._open_or_replace(Path(folder))
        except BaseException:
            for p in reversed(made):
                _remove_sqlite(p)
            raise

    def _open_or_replace(self, folder: Path) -> None:
        blocking = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise UserError(f"--cache_dir {folder}: {blocking} is a file, not a folder; point --cache_dir / "
                            f"{CACHE_ENV} at a folder, or pass --no_cache")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise _fault(self.path, exc) from None
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            remove_database(self.path, main_file=False)
            try:
                os.replace(self.path, aside)
                self.db = self._open()
            except (OSError, sqlite3.DatabaseError) as again:
                raise _fault(self.path, again) from None
            print(f"aimed-eval: warning: {self.path}: damaged response cache ({exc}); moved aside to "
                  f"{aside.name}, answers are computed again", file=sys.stderr)
        except OSError as exc:
            raise _fault(self.path, exc) from None

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            row = db.execute("PRAGMA quick_check(1)").fetchone()
            if row and row[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {row[0]}")
            enable_wal(db, timeout_s=60)
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        found: dict[str, Any] = {}
        try:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                marks = ",".join("?" * len(part))
                rows = self.db.execute(
                    f"SELECT request, response FROM responses WHERE model=? AND request IN ({marks})",
                    [model, *part])
                found.update((k, json.loads(v)) for k, v in rows)
        except sqlite3.DatabaseError as exc:  # damage past the pages quick_check read
            raise _fault(self.path, exc) from None
        return found

    def put_many(self, model: str, items: dict[str, Any]) -> None:
        try:
            with self.db:  # one transaction a batch
                self.db.execute("BEGIN")
                self.db.executemany(
                    "INSERT OR REPLACE INTO responses (model, request, response) VALUES (?, ?, ?)",
                    [(model, k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()])
        except sqlite3.DatabaseError as exc:  # disk full, read-only file, ...
            raise _fault(self.path, exc, kept=True) from None

    # file-hash memo for fingerprints (see models/fingerprint.py)
    def known_hash(self, path: str, size: int, mtime_ns: int) -> Optional[str]:
        row = self.db.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                              (path, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        try:
            self.db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (path, size, mtime_ns, sha))
        except sqlite3.DatabaseError as exc:
            raise _fault(self.path, exc, kept=True) from None

    def close(self) -> None:
        self.db.close()


def _remove_sqlite(path: Path) -> None:
    """Remove what a failed open created: the folder, or the database file and its WAL files."""
    import shutil

    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        remove_database(path)


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "file is encrypted" in text


def _fault(path: Path, exc: BaseException, kept: bool = False) -> UserError:
    """One line for a cache that cannot be opened or written (full disk, read-only folder)."""
    reason = getattr(exc, "strerror", None) or str(exc)
    done = "; the answers committed so far are kept, rerun once it is fixed" if kept else ""
    return UserError(f"{path}: cannot use the response cache ({reason}){done}; free some space, "
                     f"fix the folder's permissions, point --cache_dir / {CACHE_ENV} elsewhere, or pass --no_cache")


class NoCache:
    """``--no_cache``: nothing remembered, nothing reused."""

    path: Optional[Path] = None

    def get_many(self, model, keys):
        return {}

    def put_many(self, model, items):
        pass

    def known_hash(self, *key):
        return None

    def remember_hash(self, *key):
        pass

    def close(self):
        pass
