"""CMMLU CSV, as published: ``,Question,A,B,C,D,Answer`` (first column: the row index).

One file a subject (``test/anatomy.csv``); the subject (the file stem) is the category
``subject``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import Sample
from aimed.harness.taskspec import DataSpec

from ._io import options_from_columns, parse_answer, read_table, text, where


@plugins.LOADERS.register("cmmlu")
def load_cmmlu(path: Path, data: DataSpec) -> Iterator[Sample]:
    subject = path.stem
    for line, row in read_table(path, data, required=("Question", "A", "B", "C", "D", "Answer")):
        at = f"{path}:{line}"
        question = text(row["Question"])
        if not question:
            raise UserError(f"{at}: the Question cell is empty; fill it in or delete the row")
        index = text(row.get("")) or str(line)
        yield Sample(
            id=f"{subject}-{index}",
            question=question,
            options=options_from_columns([row[c] for c in "ABCD"], at),
            answer=parse_answer(row["Answer"], at),
            categories={"subject": subject},
            where=where(path, line),
        )
