"""Typed results of a scan, and their JSONL file.

The file's first line is a header (``{"aimed_eval": "contamination", ...}``: settings,
files, per-task counts), then one line an item. The header is how a later scan knows a
file is its own to replace; any other file is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError

KIND = "contamination"
VERSION = 1


@dataclass(frozen=True)
class ItemOverlap:
    """One item's overlap with the training data."""

    task: str
    id: str
    share: float  # 0..1: its n-grams found in the corpus, of the better view (grams.py)
    longest: int  # longest matched span, in characters (or words with unit="word")
    ngrams: int  # n-grams the share is over; 0: too short to scan, never flagged
    flagged: bool  # share >= threshold
    view: str = "parts"  # parts | text: which view gave the share
    where: str = ""  # "val.csv:17"
    preview: str = ""  # the question's first characters

    def to_record(self) -> dict:
        """What a run keeps in the item's record (``record["contamination"]``)."""
        return {"share": self.share, "longest": self.longest, "flagged": self.flagged}


@dataclass(frozen=True)
class TaskCounts:
    task: str
    items: int
    flagged: int
    unscanned: int  # items too short for one n-gram

    @property
    def share(self) -> float:
        return self.flagged / self.items if self.items else 0.0


@dataclass
class ContaminationReport:
    items: list[ItemOverlap]
    n: int
    unit: str
    threshold: float
    files: list[str] = field(default_factory=list)
    bytes_scanned: int = 0
    seconds: float = 0.0

    def flagged_ids(self, task: str) -> set[str]:
        """Ids of the task's flagged items: what a run may leave out or mark."""
        return {o.id for o in self.items if o.task == task and o.flagged}

    def counts(self) -> dict[str, TaskCounts]:
        """Per task, in the order the tasks came."""
        out: dict[str, list[int]] = {}
        for o in self.items:
            c = out.setdefault(o.task, [0, 0, 0])
            c[0] += 1
            c[1] += o.flagged
            c[2] += o.ngrams == 0
        return {t: TaskCounts(t, *c) for t, c in out.items()}

    def flagged(self) -> list[ItemOverlap]:
        """Flagged items, the most overlapping first."""
        return sorted((o for o in self.items if o.flagged), key=lambda o: (-o.share, -o.longest, o.task, o.id))

    def header(self) -> dict:
        return {"aimed_eval": KIND, "version": VERSION, "n": self.n, "unit": self.unit,
                "threshold": self.threshold, "files": self.files, "bytes_scanned": self.bytes_scanned,
                "seconds": round(self.seconds, 3),
                "counts": {t: {"items": c.items, "flagged": c.flagged, "share": round(c.share, 6),
                               "unscanned": c.unscanned} for t, c in self.counts().items()}}

    def write_jsonl(self, path: Path, what: str = "--out") -> None:
        """Header line, then an item a line; through a temporary sibling renamed into place,
        so a reader never sees half a file. Refuses a file this tool did not write."""
        path = Path(path)
        check_out(path, what)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise UserError(f"{what} {path}: cannot write there ({exc.strerror}); choose another folder") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self.header(), ensure_ascii=False) + "\n")
                for o in self.items:
                    f.write(json.dumps(asdict(o), ensure_ascii=False) + "\n")
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise UserError(f"{what} {path}: cannot write it ({exc.strerror}); free some space or choose "
                            "another folder") from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def read_jsonl(cls, path: Path) -> "ContaminationReport":
        """A report an earlier scan wrote (``aimed-eval contamination --out``)."""
        path = Path(path)
        try:
            with path.open(encoding="utf-8") as f:
                head = _header(f.readline())
                if head is None:
                    raise UserError(f"{path}: not a contamination report aimed-eval wrote; give the --out file "
                                    "of `aimed-eval contamination`")
                items = [ItemOverlap(**json.loads(line)) for line in f if line.strip()]
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"{path}: cannot read the contamination report ({exc}); scan again") from None
        return cls(items, head["n"], head["unit"], head["threshold"], head.get("files", []),
                   head.get("bytes_scanned", 0), head.get("seconds", 0.0))


def _header(line: str) -> dict | None:
    try:
        head = json.loads(line)
    except ValueError:
        return None
    return head if isinstance(head, dict) and head.get("aimed_eval") == KIND else None


def is_ours(path: Path) -> bool:
    try:
        with Path(path).open("rb") as f:
            line = f.readline(1 << 16).decode("utf-8", errors="replace")
    except OSError:
        return False
    return _header(line) is not None


def check_out(path: Path, what: str = "--out") -> None:
    """Refuse an output path before any scanning: a folder, a missing folder, a file of
    someone else's (left as it is)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; give a file name such as {path / 'contamination.jsonl'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{what} {path}: folder {parent} does not exist; create it or write elsewhere")
    if path.exists() and not is_ours(path):
        raise UserError(f"{what} {path}: already exists and is not a contamination report aimed-eval wrote; "
                        "choose another file name (it was left as it is)")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{what} {path}: folder {parent} is not writable; choose a folder you can write to")
