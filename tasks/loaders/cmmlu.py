"""CMMLU CSV, as published: ``,Question,A,B,C,D,Answer`` (first column: the row index).

One file a subject (``test/anatomy.csv``); the subject (the file stem) is the category
``subject``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import options_from_columns, parse_answer, read_table, samples_from_rows, text, where


@plugins.LOADERS.register("cmmlu")
def load_cmmlu(path: Path, data: DataSpec) -> Iterator[Sample | BadRow]:
    subject = path.stem

    def make(line: int, row: dict) -> Sample:
        at = f"{path}:{line}"
        question = text(row["Question"])
        if not question:
            raise UserError(f"{at}: the Question cell is empty; fill it in or delete the row")
        index = text(row.get("")) or str(line)
        return Sample(
            id=f"{subject}-{index}",
            question=question,
            options=options_from_columns([row[c] for c in "ABCD"], at),
            answer=parse_answer(row["Answer"], at),
            categories={"subject": subject},
            where=where(path, line),
        )

    yield from samples_from_rows(read_table(path, data, required=("Question", "A", "B", "C", "D", "Answer")),
                                 path, make)
