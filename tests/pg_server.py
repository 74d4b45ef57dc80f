"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a cluster
in a temporary folder, password authentication on 127.0.0.1 and a port of its own,
stopped (``pg_ctl stop``) when the tests end. As root, the server runs as the
``postgres`` user (initdb refuses root). ``AIMED_TEST_PG_URL`` names a server that is
already running instead (a CI service, a developer's own).

Also the helpers of the tests that run on both backends (tests/conftest.py's ``index_db``):
``copy_index`` and ``rows_of``."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

PASSWORD = "aimed-test-pw"


def _bin(name: str) -> Optional[str]:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> Optional[str]:
    """Why no server can be started here, or None."""
    if os.environ.get("AIMED_TEST_PG_URL"):
        return None
    if not (_bin("initdb") and _bin("pg_ctl")):
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    return None


class Server:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="aimed-pg-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else os.environ.get("USER", "postgres")

    def _run(self, *argv: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(argv)
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "Server":
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.as_postgres:
            shutil.chown(pwfile, "postgres")
        data = self.folder / "data"
        self._run(_bin("initdb"), "-D", str(data), "-U", self.user, "--pwfile", str(pwfile), "-E", "UTF8",
                  "--auth-host=scram-sha-256", "--auth-local=trust")
        self._run(_bin("pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "start", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=60 "
                  "-c fsync=off")
        self.url("postgres")  # reachable
        return self

    def url(self, database: str = "aimed", password: str = PASSWORD) -> str:
        return f"postgresql://{self.user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class External:
    """A server named by AIMED_TEST_PG_URL (its URL names a database the tests may reuse)."""

    def __init__(self, url: str):
        self.base = url

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        head, _, _ = self.base.rpartition("/")
        return f"{head}/{name}"

    def stop(self) -> None:
        pass


def start():
    url = os.environ.get("AIMED_TEST_PG_URL")
    if url:
        return External(url)
    for attempt in range(3):  # a port taken between choosing it and binding it: another
        try:
            return Server().start()
        except subprocess.CalledProcessError:
            if attempt == 2:
                raise
            time.sleep(0.5)


# ---- helpers of the tests on both backends ----------------------------------------------

def copy_index(src, dst) -> str:
    """Every row of the index ``src`` written into the new index ``dst`` (either backend):
    the same runs to read on the other backend without scoring them again."""
    from aimed.harness.index import TABLES, begin_write, connect

    source, target = connect(src, readonly=True), connect(dst)
    try:
        begin_write(target)
        for table in TABLES:
            cursor = source.execute(f"SELECT * FROM {table}")
            rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor.fetchall()]
            names = [d[0] for d in cursor.description]
            target.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                               rows)
        target.execute("COMMIT")
        if hasattr(target, "refresh_statistics"):
            target.refresh_statistics()
    finally:
        source.close()
        target.close()
    return str(dst)


def rows_of(cursor) -> list[tuple]:
    """A query's rows as tuples of values on both backends (PostgreSQL's rows are dicts)."""
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor]
