"""Which checkpoints a sweep scores: ``--models`` values expanded into checkpoint folders.

A value is one of:

- a checkpoint folder (it holds ``config.json``, or ``adapter_config.json`` for a LoRA
  adapter, which is scored on the base it names, as ``aimed-eval run --model ADAPTER`` does);
- a folder that holds checkpoints anywhere below it (a pipeline's or a training stage's
  output folder): every checkpoint folder found, hidden folders left out;
- a glob (``out/*/sft/checkpoint-*``, ``**`` allowed), each match expanded as above; quote
  it, or let the shell expand it (``--models`` takes several values);
- a text file naming one value a line (``#`` comments and blank lines ignored; relative
  paths are relative to the current folder, as on the command line).

Hub ids are not taken: a sweep scores folders on disk, so a mistyped path is an error
rather than a download attempt (score a hub model with ``aimed-eval run``).

Two kinds of folders are found but not scored, and the sweep's table says so: reward
models (a ``rm`` stage's checkpoints, or a ``*ForSequenceClassification`` architecture),
which are not language models, and ``parent-merged`` folders, the merge a training stage
makes of its parent adapter before it trains (scored as that parent already).
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import UserError

ADAPTER_CONFIG = "adapter_config.json"
MANIFEST = "aimed_checkpoint.json"
MERGED_PARENT = "parent-merged"  # trainers/lineage.py writes it (the harness cannot import trainers)
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint folder a sweep found: its resolved path and its short label for tables
    and run folder names (unique within the sweep)."""

    path: Path
    label: str


@dataclass(frozen=True)
class LeftOut:
    """A folder found and deliberately not scored, with the reason the table shows."""

    path: Path
    label: str
    reason: str


def is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / ADAPTER_CONFIG).is_file()


def find_checkpoints(values: list[str]) -> tuple[list[Checkpoint], list[LeftOut]]:
    """Every checkpoint the ``--models`` values name, in order, each once; a value that names
    none is a UserError that says what it matched."""
    found: list[Path] = []
    for value in values:
        if not value.strip():
            raise UserError("--models: an empty value; give a checkpoint folder, a folder of checkpoints, "
                            "a glob or a list file")
        found += _expand(value, f"--models {value}")
    unique = list(dict.fromkeys(found))
    labels = unique_labels(unique)
    keep, left = [], []
    for path in unique:
        reason = _not_scored(path)
        if reason:
            left.append(LeftOut(path, labels[path], reason))
        else:
            keep.append(Checkpoint(path, labels[path]))
    if not keep:
        names = ", ".join(f"{x.label} ({x.reason})" for x in left[:3])
        raise UserError(f"--models {' '.join(values)}: found no checkpoint to score, only {names}; "
                        "name language-model checkpoints")
    return keep, left


def _expand(value: str, what: str, in_list: Optional[Path] = None) -> list[Path]:
    path = Path(value).expanduser()
    if path.is_dir():
        found = _walk(path)
        if not found:
            raise UserError(f"{what}: holds no checkpoint folder (one with config.json or {ADAPTER_CONFIG}); "
                            "point at a checkpoint or a folder of them")
        return found
    if path.is_file():
        if in_list is not None:
            raise UserError(f"{what}: is a file, not a checkpoint folder; list checkpoint folders in {in_list}")
        return _read_list(path)
    if GLOB_CHARS & set(value):
        matches = sorted(glob.glob(os.path.expanduser(value), recursive=True))
        found = [c for m in matches if Path(m).is_dir() for c in _walk(Path(m))]
        if not found:
            seen = f"{len(matches)} path(s), none a checkpoint folder" if matches else "nothing"
            raise UserError(f"{what}: the pattern matches {seen} (a checkpoint folder holds config.json or "
                            f"{ADAPTER_CONFIG}); check the pattern")
        return found
    raise UserError(f"{what}: no such folder; give a checkpoint folder, a folder of checkpoints, a glob or a "
                    "list file (hub ids: score them with `aimed-eval run`)")


def _read_list(list_file: Path) -> list[Path]:
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--models {list_file}: cannot read it as a text list of checkpoints ({exc}); "
                        "give a file with one checkpoint folder a line") from None
    found: list[Path] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            found += _expand(entry, f"--models {list_file} line {number}: {entry}", in_list=list_file)
    if not found:
        raise UserError(f"--models {list_file}: names no checkpoint; write one checkpoint folder a line")
    return found


def _walk(root: Path) -> list[Path]:
    """``root`` itself when it is a checkpoint, else the checkpoints below it (not descending
    into a checkpoint, nor into hidden folders such as a run's temporary swap folders)."""
    root = root.resolve()
    if is_checkpoint(root):
        return [root]
    found = []
    for folder, subfolders, _ in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        here = Path(folder)
        if here != root and is_checkpoint(here):
            found.append(here)
            subfolders[:] = []
    return found


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _not_scored(folder: Path) -> Optional[str]:
    if folder.name == MERGED_PARENT:
        return "the parent merged for training, scored as that parent"
    if _json(folder / MANIFEST).get("stage") == "rm" or _json(folder / ADAPTER_CONFIG).get("task_type") == "SEQ_CLS":
        return "a reward model, not a language model"
    architectures = _json(folder / "config.json").get("architectures") or ()
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return "a reward model, not a language model"
    return None


def unique_labels(paths: list[Path]) -> dict[Path, str]:
    """The shortest tail of each path that tells it from the others: a trainer's
    ``checkpoint-N`` keeps its parent's name (``sft/checkpoint-200``); two stages of two
    pipelines keep as many folders above as it takes."""
    def tail(p: Path, n: int) -> str:
        return "/".join(p.parts[-n:])

    depth = {p: 2 if p.name.startswith("checkpoint") and len(p.parts) > 2 else 1 for p in paths}
    while True:
        labels = {p: tail(p, depth[p]) for p in paths}
        clash = {p for p in paths if sum(1 for q in paths if labels[q] == labels[p]) > 1}
        grow = {p for p in clash if depth[p] < len(p.parts) - 1}
        if not grow:
            return labels
        for p in grow:
            depth[p] += 1
