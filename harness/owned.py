"""What this tool may delete or replace: only folders it wrote, never the user's.

Every folder a command creates to fill (a run folder, a training stage's folder, an
lm-eval export, a merged checkpoint, the demo folder) gets a marker file, ``.aimed-eval``,
naming its kind. ``--overwrite`` (or ``overwrite: true``) replaces a folder only when it is
recognisably ours: the marker, or for folders written before markers existed, the files
that kind of folder always holds and nothing else. The current folder, any folder above
it, the home folder and a file-system root are refused whatever they hold, so an empty
``--output_dir "$UNSET"`` can never empty the working folder.

A replacement is a swap: the new content is written to a temporary sibling, the old
folder renamed aside, the new one renamed into place, and only then the old one removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

MARKER = ".aimed-eval"

# Files a folder of each kind held before markers existed: with overwrite, such a folder
# whose every top-level entry matches is ours too.
_LEGACY = {
    "run": lambda names: "results.json" in names and all(
        n == "results.json" or (n.startswith("samples_") and n.endswith(".jsonl")) for n in names),
    # a stage killed before markers existed left checkpoint folders (and its parent's merge)
    "stage": lambda names: "aimed_stage.json" in names or all(
        re.fullmatch(r"checkpoint-\d+|parent-merged|runs|[\w.-]+\.jsonl", n) for n in names),
    "merge": lambda names: "aimed_checkpoint.json" in names and "config.json" in names,
    "demo": lambda names: {"pipeline.yaml", "tiny-llama"} <= names,
    "export": lambda names: "data" in names and all(n == "data" or n.endswith(".yaml") for n in names),
}


def protected_reason(path: Path) -> str | None:
    """Why ``path`` must never be replaced (the working folder, a folder above it, the
    home folder, a root), or None."""
    here = Path(path).expanduser().resolve()
    if here == Path(here.anchor):
        return "is a file-system root"
    cwd = Path.cwd().resolve()
    if here == cwd:
        return "is the current folder"
    if here in cwd.parents:
        return "holds the current folder"
    home = Path.home().resolve()
    if here == home or here in home.parents:
        return "is the home folder" if here == home else "holds the home folder"
    if os.path.ismount(here):
        return "is a mount point (a file system's root)"
    return None


def kind_of(folder: Path) -> str | None:
    """The kind of folder this tool wrote at ``folder`` (its marker, or legacy files), or None."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text(encoding="utf-8")).get("kind") or "") or None
        except (OSError, ValueError, AttributeError):
            return None
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return None
    return next((kind for kind, looks in _LEGACY.items() if names and looks(names)), None)


def write_marker(folder: Path, kind: str) -> None:
    (Path(folder) / MARKER).write_text(json.dumps({"kind": kind, "tool": "aimed-eval",
                                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n",
                                       encoding="utf-8")


def check_target(path: Path, *, what: str, kind: str, overwrite: bool, how: str = "pass --overwrite") -> None:
    """Refuse ``path`` as the folder a command fills unless it is new, empty, or ours and
    ``overwrite`` is set. ``what`` names it in messages (``--output_dir``), ``how`` says how
    the user allows a replacement (``pass --overwrite``, ``set overwrite: true``)."""
    path = Path(path)
    if str(path) in ("", "."):
        shown = repr(str(path)) if str(path) == "" else "."
    else:
        shown = str(path)
    reason = protected_reason(path)
    if reason:
        raise UserError(f"{what} {shown}: {reason}; give a new folder of its own "
                        "(nothing was written or removed)")
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {shown}: is a file, not a folder; give a folder's path")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"{what} {shown}: {blocking} is a file, so no folder can be made under it; "
                        "give another path")
    inside = next((p for p in path.resolve().parents if kind_of(p) in ("run", "merge")), None)
    if inside is not None:  # a folder inside a run or a checkpoint would change what it holds
        raise UserError(f"{what} {shown}: is inside {inside}, a {kind_of(inside)} folder aimed-eval wrote; "
                        "give a folder outside it")
    if not path.is_dir() or not any(path.iterdir()):
        return
    ours = kind_of(path) == kind
    if not ours:
        raise UserError(f"{what} {shown}: already holds files that aimed-eval did not write there "
                        f"(no {MARKER} marker of a {kind} folder); choose a new folder, nothing was touched")
    if not overwrite:
        raise UserError(f"{what} {shown}: already holds a {kind} folder; choose a new folder or {how} to replace it")


def replace_folder(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest``; an old ``dest`` (checked to be ours) is
    removed only once the new one is in place."""
    aside = None
    if dest.exists():
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, aside)
    try:
        os.replace(tmp, dest)
    except OSError:
        if aside is not None:
            os.replace(aside, dest)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``folder`` while a command fills it: a second command
    aimed at the same folder is refused instead of replacing the first one's results."""
    import fcntl

    folder = Path(folder)
    lock_path = folder.parent / f".{folder.name}.lock"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or full file system: said before any work is done
        raise UserError(f"{what} {folder}: cannot write there ({exc.strerror}); choose a folder you can "
                        "write to") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise UserError(f"{what} {folder}: another aimed-eval command (pid {holder}) is writing it now; "
                        "wait for it to finish or choose another folder") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        try:
            lock_path.unlink()
        except OSError:
            pass
        os.close(fd)
