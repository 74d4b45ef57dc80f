"""Medical term definitions (名词解释), JSONL: ``id, term, definition, source``.

Generation: the question is the term, the target its definition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import Sample
from aimed.harness.taskspec import DataSpec

from ._io import read_jsonl, text, where


@plugins.LOADERS.register("medterm")
def load_medterm(path: Path, data: DataSpec) -> Iterator[Sample]:
    for line, obj in read_jsonl(path, data, required=("term", "definition")):
        term = text(obj["term"])
        if not term:
            raise UserError(f"{path}:{line}: 'term' is empty; fill it in or delete the line")
        cats = {"source": text(obj["source"])} if text(obj.get("source")) else {}
        yield Sample(
            id=text(obj.get("id")) or f"medterm-{line}",
            question=term,
            target=text(obj["definition"]),
            categories=cats,
            where=where(path, line),
        )
