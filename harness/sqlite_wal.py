"""Opening an SQLite file that several processes share, in WAL mode.

Switching a new database to WAL takes an exclusive lock, and SQLite answers "database is
locked" at once (without waiting out the busy timeout) when another process holds the
file at that moment, as two data-parallel ranks opening one fresh cache do. So the switch
is retried until the timeout."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def enable_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """``PRAGMA journal_mode=WAL`` and ``synchronous=NORMAL`` (durable across app crashes),
    retried on a busy or locked file for up to ``timeout_s``; then the error stands."""
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    db.execute("PRAGMA synchronous=NORMAL")


def remove_database(path: Path, main_file: bool = True) -> None:
    """Remove an SQLite file's WAL side files (``-wal``, ``-shm``, ``-journal``), and the file
    itself unless ``main_file`` is False. Nothing to remove, or a read-only file system,
    is not an error: callers clean up after a failure they are already reporting."""
    for suffix in ("", "-wal", "-shm", "-journal") if main_file else ("-wal", "-shm", "-journal"):
        try:
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError:
            pass
