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
from pathlib import Path
from typing import Any, Iterable, Optional

from .sqlite_wal import enable_wal

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
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "responses.sqlite"
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        enable_wal(self.db, timeout_s=60)
        self.db.executescript(SCHEMA)

    def get_many(self, model: str, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(keys)
        found: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT request, response FROM responses WHERE model=? AND request IN ({marks})",
                [model, *part])
            found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, model: str, items: dict[str, Any]) -> None:
        with self.db:  # one transaction a batch
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO responses (model, request, response) VALUES (?, ?, ?)",
                [(model, k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()])

    # file-hash memo for fingerprints (see models/fingerprint.py)
    def known_hash(self, path: str, size: int, mtime_ns: int) -> Optional[str]:
        row = self.db.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                              (path, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def remember_hash(self, path: str, size: int, mtime_ns: int, sha: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?)", (path, size, mtime_ns, sha))

    def close(self) -> None:
        self.db.close()


class NoCache:
    """``--no_cache``: nothing remembered, nothing reused."""

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
