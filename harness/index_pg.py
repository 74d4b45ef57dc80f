"""The results index on PostgreSQL: the same tables and the same SQL as the SQLite index.

The index's SQL is written once, in what both databases speak (``?`` parameters, no
``INSERT OR REPLACE``, aliased subqueries, quoted reserved words). :class:`PgIndex` gives
psycopg the look of the ``sqlite3`` connection the rest of the code uses: ``execute`` and
``executemany`` with ``?`` parameters, rows readable by name and by position, explicit
``BEGIN``/``COMMIT``/``ROLLBACK``. ``BEGIN IMMEDIATE`` (a writer) also takes a transaction
advisory lock, so writers queue one at a time as they do on SQLite, and a run is recorded
whole or not at all: a connection lost mid-write rolls the transaction back on the server.

A URL's password is never echoed: every message names ``without_password(url)``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Optional, Sequence

from .errors import UserError
from .flag_types import without_password

PG_SCHEMES = ("postgresql://", "postgres://")
WRITE_LOCK = 730_217  # the advisory lock a writer holds for its transaction
# SQLite's REAL is a double; PostgreSQL's is a float4: the DDL says what is meant
_TYPES = {"REAL": "DOUBLE PRECISION"}


def is_pg_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PG_SCHEMES)


class Row(dict):
    """A row by column name (a plain dict lookup, in C: the leaderboard reads ~10^6 cells)
    and by position (``row[0]``), as ``sqlite3.Row``. Unlike it, iterating gives the names."""

    __slots__ = ()

    def __missing__(self, key):
        if isinstance(key, int):
            return list(self.values())[key]
        raise KeyError(key)


def _row_factory(cursor):
    names = tuple(c.name for c in cursor.description or ())
    return lambda values: Row(zip(names, values))


def translate(sql: str) -> str:
    """``?`` parameters as psycopg's ``%s`` (a literal ``%`` doubled), outside quoted text."""
    out, quote = [], None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def ddl(statement: str) -> str:
    for word, pg in _TYPES.items():
        statement = re.sub(rf"\b{word}\b", pg, statement)
    return statement


class PgIndex:
    """A psycopg connection (autocommit; transactions are explicit) in sqlite3's clothes."""

    kind = "postgresql"

    def __init__(self, url: str, readonly: bool = False, timeout_s: float = 10.0):
        try:
            import psycopg
        except ImportError:
            raise UserError(f"{without_password(url)}: a PostgreSQL index needs psycopg, which is not installed: "
                            'pip install "aimed-eval[postgres]"') from None

        self.url = without_password(url)
        self.readonly = readonly
        _check_url(url, self.url)
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout_s)))
        except psycopg.ProgrammingError as exc:  # the URL itself does not parse
            raise UserError(f"{self.url}: not a valid PostgreSQL URL ({_first(exc)}); give e.g. "
                            "postgresql://USER@HOST:5432/DBNAME (the password from PGPASSWORD or ~/.pgpass)") from None
        except psycopg.OperationalError as exc:
            raise connect_fault(self.url, exc) from None
        self.conn.row_factory = _row_factory
        if readonly:
            self.conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    # ---- the sqlite3 surface the index code uses ----------------------------------------
    row_factory = None  # set by callers of sqlite3; rows here are always Row

    def execute(self, sql: str, params: Sequence[Any] = ()):
        import psycopg

        text = sql.strip().upper()
        try:
            if text == "BEGIN IMMEDIATE":
                self.conn.execute("BEGIN")
                return self.conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            return self.conn.execute(translate(sql), list(params))
        except psycopg.OperationalError as exc:
            raise connect_fault(self.url, exc) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]):
        import psycopg

        rows = [list(r) for r in rows]
        if not rows:
            return None
        try:
            with self.conn.cursor() as cur:
                cur.executemany(translate(sql), rows)
        except psycopg.OperationalError as exc:
            raise connect_fault(self.url, exc) from None

    def fetch_tuples(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """All rows of a query as plain tuples: for the big reads (a leaderboard's ~10^5
        cells), where building a :class:`Row` a row costs more than the query."""
        import psycopg
        from psycopg.rows import tuple_row

        try:
            with self.conn.cursor(row_factory=tuple_row) as cur:
                return cur.execute(translate(sql), list(params)).fetchall()
        except psycopg.OperationalError as exc:
            raise connect_fault(self.url, exc) from None

    def refresh_statistics(self) -> None:
        """ANALYZE the index's tables once a fifth of their rows are new since the last one.
        Autovacuum does it too, but only every minute or so: a burst of imports into a new
        index leaves the planner without statistics, and its leaderboard query then takes
        seconds (4.3 s instead of 0.25 s for 1,000 runs x 20 tasks, measured)."""
        row = self.execute("SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
                           "WHERE relname = 'scores' AND schemaname = current_schema()").fetchone()
        if row and row[0] > max(500, 0.2 * row[1]):
            self.execute("ANALYZE runs, task_meta, scores, categories")

    def tables(self) -> set[str]:
        return {r[0] for r in self.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator:  # pragma: no cover - not a cursor
        raise TypeError("iterate over execute(...), not the connection")


def _check_url(url: str, shown: str) -> None:
    """A URL that cannot name a server (no host, a port that is not a number) is refused
    before any connection is tried."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UserError(f"{shown}: not a valid PostgreSQL URL ({exc}); give e.g. "
                        "postgresql://USER@HOST:5432/DBNAME") from None
    if not parts.hostname or not parts.path.strip("/"):
        raise UserError(f"{shown}: not a valid PostgreSQL URL (it names no {'host' if not parts.hostname else 'database'});"
                        f" give e.g. postgresql://USER@HOST:{port or 5432}/DBNAME")


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def connect_fault(url: str, exc: BaseException) -> UserError:
    """One line for a server that is down, a wrong password, a lost connection."""
    text = _first(exc)
    if "password authentication failed" in text or "no password supplied" in text:
        return UserError(f"{url}: the server refused the user or password ({text}); check the URL's user and "
                         "PGPASSWORD or ~/.pgpass")
    if "does not exist" in text and "database" in text:
        return UserError(f"{url}: {text}; create it (createdb) or name another database in the URL")
    if any(w in text for w in ("Connection refused", "could not connect", "resolve host")) or "timeout" in text.lower():
        return UserError(f"{url}: cannot reach the PostgreSQL server ({text}); check that it is running and "
                         "the URL's host and port")
    return UserError(f"{url}: the PostgreSQL connection failed ({text}); nothing half-written is kept, "
                     "retry once the server is reachable")


def schema_statements(schema: str) -> list[str]:
    return [ddl(s) for s in schema.split(";") if s.strip()]


def version_of(db: PgIndex) -> Optional[int]:
    """The schema version an index records (None: no version table, not an index)."""
    if "aimed_schema" not in db.tables():
        return None
    row = db.execute("SELECT max(version) FROM aimed_schema").fetchone()
    return row[0] if row else None
