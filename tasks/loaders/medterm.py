"""Medical term definitions (名词解释), JSONL: ``id, term, definition, source``.

Generation: the question is the term, the target its definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import read_jsonl, samples_from_rows, text, where


@plugins.LOADERS.register("medterm")
def load_medterm(path: Path, data: DataSpec) -> Iterator[Sample | BadRow]:
    def make(line: int, obj: dict) -> Sample:
        term = text(obj["term"])
        if not term:
            raise UserError(f"{path}:{line}: 'term' is empty; fill it in or delete the line")
        cats = {"source": text(obj["source"])} if text(obj.get("source")) else {}
        return Sample(
            id=text(obj.get("id")) or f"medterm-{line}",
            question=term,
            target=text(obj["definition"]),
            categories=cats,
            where=where(path, line),
        )

    yield from samples_from_rows(read_jsonl(path, data, required=("term", "definition")), path, make)
