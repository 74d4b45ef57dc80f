"""Which results index ``leaderboard``, ``dashboard`` and ``report`` read when no ``--db``
is given, and the note every command that records runs leaves for them.

Without ``--db`` or ``$AIMED_DB`` the first that exists of:

1. the index the last recording command used (``run``, ``import``, ``train``,
   ``pipeline``, ``demo``), when it lies under the current folder;
2. ``./aimed_runs/aimed_index.sqlite`` (``run``'s default output root);
3. ``./aimed_demo/aimed_index.sqlite`` (``demo``'s default folder);
4. the last recording command's index, wherever it is.

So ``run --output_dir runs2/x`` followed by ``leaderboard`` shows ``runs2/``'s index, and a
folder's own indexes win over one recorded from elsewhere. The chosen index is named on
stderr (stdout may be a CSV or JSON being piped). The note is one small JSON file in the
response-cache folder (``$AIMED_CACHE``, else ``~/.cache/aimed-eval``): the one place
shared by every working folder that needs no flag.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

from .cache import default_cache_dir
from .errors import UserError
from .index import DB_ENV, DB_NAME, default_db

LAST_INDEX_FILE = "last_index.json"
USUAL_FOLDERS = ("aimed_runs", "aimed_demo")
LOOKUP_HELP = (f"results index (default: ${DB_ENV}, else the index the last run recorded in when it is under "
               f"this folder, else {', '.join(f'./{f}/{DB_NAME}' for f in USUAL_FOLDERS)}, else the last run's index)")


def _note_file() -> Path:
    return default_cache_dir() / LAST_INDEX_FILE


def remember_index(db: Path) -> None:
    """Note ``db`` as the index last recorded in. Never fails the command that recorded:
    a cache folder that cannot be written only loses the note. A PostgreSQL index is not
    noted: its URL may hold a password, and a team names it in ``AIMED_DB``."""
    from .index_pg import is_pg_url

    if is_pg_url(db):
        return
    note = _note_file()
    tmp = note.with_name(f".{note.name}.tmp-{os.getpid()}")
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"db": str(Path(db).expanduser().resolve())}) + "\n", encoding="utf-8")
        os.replace(tmp, note)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)  # a full disk leaves no temporary behind either
        except OSError:
            pass


def last_index() -> Optional[Path]:
    """The index the last recording command used, if the note is readable and it still exists."""
    try:
        db = Path(json.loads(_note_file().read_text(encoding="utf-8"))["db"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return db if db.is_file() else None


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def candidates() -> list[tuple[Path, str]]:
    """(index, why) in the order they are tried, the missing ones included."""
    here = Path.cwd()
    last = last_index()
    out = []
    if last is not None and _under(last, here):
        out.append((last, "the index the last run recorded in"))
    out += [(Path(f) / DB_NAME, f"./{f}") for f in USUAL_FOLDERS]
    if last is not None and not _under(last, here):
        out.append((last, "the index the last run recorded in"))
    return out


def find_index(given: Optional[Path]) -> Path:
    """``given`` (``--db``) as it is; else ``$AIMED_DB``; else the first index of
    :func:`candidates` that exists, named on stderr. None there: a UserError saying where
    it looked (exit 2)."""
    if given is not None:
        return given
    if os.environ.get(DB_ENV):
        return default_db()  # checks the variable (a database URL is refused)
    found = [(db, why) for db, why in candidates() if db.is_file()]
    if not found:
        looked = ", ".join(str(db) for db, _ in candidates())
        raise UserError(f"no results index found (looked for {looked}); record runs with `aimed-eval run` "
                        f"or `aimed-eval demo`, or give --db (or set {DB_ENV})")
    db, why = found[0]
    print(f"aimed-eval: using the results index {db} ({why}; --db for another)", file=sys.stderr, flush=True)
    return db
