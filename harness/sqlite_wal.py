"""Opening an SQLite file that several processes share, in WAL mode.

Switching a new database to WAL takes an exclusive lock, and SQLite answers "database is
locked" at once (without waiting out the busy timeout) when another process holds the
file at that moment, as two data-parallel ranks opening one fresh cache do. So the switch
is retried until the timeout."""

from __future__ import annotations

import sqlite3
import time


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
