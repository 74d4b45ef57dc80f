"""``aimed-eval dashboard``: start the streamlit dashboard over the results index.

Bound to 127.0.0.1 unless ``--host`` says otherwise (the index names every checkpoint
path a team has), headless, no usage statistics. The index is checked before streamlit
starts, so a wrong ``--db`` is one line and exit 2, not a red page in a browser. On
POSIX the command becomes the streamlit process (``exec``), so stopping it (Ctrl-C,
SIGTERM) stops the server with nothing left behind.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from aimed.harness import flag_types
from aimed.harness.flag_types import without_password
from aimed.harness.index_pg import is_pg_url
from aimed.harness.errors import UserError
from aimed.harness.index_lookup import LOOKUP_HELP, find_index

APP = Path(__file__).with_name("dashboard_app.py")
INSTALL = "pip install 'aimed-eval[dashboard]'"


def add_parser(sub) -> None:
    p = sub.add_parser("dashboard", help="start the streamlit dashboard over the results index (read-only)")
    p.add_argument("--db", type=flag_types.db_path, default=None, help=LOOKUP_HELP)
    p.add_argument("--host", default="127.0.0.1", type=flag_types.host, help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=flag_types.port, default=8501, help="port (default: 8501)")
    p.set_defaults(func=dashboard)


def streamlit_command(db, host: str, port: int) -> list[str]:
    """The streamlit command; a PostgreSQL index travels in AIMED_DB (``dashboard``), not on
    the command line, where ``ps`` would show its password."""
    tail = [] if is_pg_url(db) else ["--", "--db", str(db)]
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--client.toolbarMode", "minimal", *tail]


def check(ns: argparse.Namespace) -> Path:
    """The index path, after checking everything that can be wrong before streamlit starts."""
    for name in ("streamlit", "plotly", "pandas"):
        if importlib.util.find_spec(name) is None:
            raise UserError(f"the dashboard needs {name}, which is not installed: {INSTALL}")
    if not 0 < ns.port < 65536:
        raise UserError(f"--port {ns.port}: give a port between 1 and 65535")
    db = find_index(ns.db)
    if is_pg_url(db):
        from aimed.leaderboards.query import open_index

        open_index(db).close()  # a UserError (without the password) for a bad URL or server
        return db
    db = db.expanduser().resolve()
    if not db.is_file():
        raise UserError(f"{db}: no results index there; record runs with `aimed-eval run` or "
                        "`aimed-eval import`, or point --db / AIMED_DB at an index")
    import sqlite3

    from aimed.leaderboards.query import open_index

    try:
        conn = open_index(db)  # UserError for a file that is not an index
        try:
            conn.execute("SELECT count(*) FROM runs").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:  # not a database, or no runs table
        raise UserError(f"{db}: not a results index ({exc}); point --db at aimed_index.sqlite") from None
    return db


def dashboard(ns: argparse.Namespace) -> int:
    db = check(ns)
    cmd = streamlit_command(db, ns.host, ns.port)
    if is_pg_url(db):
        os.environ["AIMED_DB"] = db  # the app reads it there (not from argv: ps shows argv)
    shown = without_password(db) if is_pg_url(db) else db
    print(f"dashboard: http://{ns.host}:{ns.port}  (index {shown}; Ctrl-C stops it)", flush=True)
    if ns.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: bound to {ns.host}, so other machines can reach it; it has no login", file=sys.stderr, flush=True)
    if os.name == "posix":
        os.execv(cmd[0], cmd)  # does not return
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130
