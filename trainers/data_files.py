"""Reading training files: JSON records (JSONL, or a JSON array) and raw text, with errors
that name the file and line.

A ``.json`` file may hold one array of objects or, as many published sets do
(Huatuo's ``llama_data.json``), one object a line. Relative paths not found as given are
read from ``$AIMED_DATA``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

from aimed.harness.errors import UserError

from .stages import resolve_data_file

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSON_SUFFIXES = (".json", ".jsonl")


def data_files(names: list[str], what: str = "train_files") -> list[Path]:
    if not names:
        raise UserError(f"{what}: give at least one data file")
    return [resolve_data_file(n) for n in names]


def read_records(path: Path, limit: Optional[int] = None) -> Iterator[tuple[str, dict]]:
    """``(where, record)`` pairs of a JSON/JSONL file; ``where`` is ``file:line`` (or
    ``file:item N`` for an array). At most ``limit`` records."""
    if path.suffix.lower() not in JSON_SUFFIXES:
        raise UserError(f"{path}: expected a .json or .jsonl file of records")
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    count = 0
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        for i, item in enumerate(items, start=1):
            if limit is not None and count >= limit:
                return
            where = f"{path}:item {i}"
            yield where, _object(item, where)
            count += 1
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            return
        where = f"{path}:{lineno}"
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{where}: not a JSON object ({exc}); give one JSON object a line") from None
        yield where, _object(item, where)
        count += 1


def _object(item, where: str) -> dict:
    if not isinstance(item, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return item


def field_text(record: dict, key: str, where: str, needs: str, required: bool = True) -> str:
    """``record[key]`` as a string; a missing or non-text field is a UserError naming it."""
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip() and required):
        if not required:
            return ""
        raise UserError(f"{where}: missing field {key!r} ({needs})")
    if not isinstance(value, str):
        raise UserError(f"{where}: field {key!r} should be text, not {type(value).__name__}")
    return value


def read_texts(path: Path, limit: Optional[int] = None) -> list[str]:
    """Raw documents: one a line of a text file, or the ``text`` field of JSON records."""
    if path.suffix.lower() in JSON_SUFFIXES:
        return [field_text(r, "text", where, "pretraining records need a 'text' field")
                for where, r in read_records(path, limit)]
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise UserError(f"{path}: unknown pretraining file type; give a .txt file (one document a line) "
                        "or .json/.jsonl records with a 'text' field")
    docs = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    return docs[:limit] if limit is not None else docs
