"""CMExam CSV, as published: ``Question, Options, Answer, Explanation`` (+ annotation columns).

UTF-8 with BOM, CRLF; ``Options`` is a quoted multi-line cell, one ``A 原发病`` a line;
``Answer`` is one letter or several (``ABD``). The annotated test file adds ``Disease Group,
Area of Competency, Clinical Department, Medical Discipline, Difficulty level``, which become
``Sample.categories`` when non-empty. ``Explanation`` is kept as written (the ``cmexam``
protocol scores explanations against it). A row whose Answer is blank or ``nan`` (an empty
cell written out by pandas; val.csv has one) has no gold and is skipped with a warning.

Ids: an ``id`` column when the file has one; else ``cmexam-<line>`` for CMExam's own files
(``train.csv``, ``val.csv``, ``test.csv``, ``test_with_annotations.csv``) and
``<file stem>-<line>`` for any other file in this format, so that two such files never
share ids.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskregistry import first_warning
from aimed.harness.taskspec import DataSpec

from ._io import parse_answer, parse_option_lines, read_table, samples_from_rows, text, where

log = logging.getLogger(__name__)

ANNOTATIONS = ("Disease Group", "Area of Competency", "Clinical Department", "Medical Discipline",
               "Difficulty level")
NO_ANSWER = ("", "nan", "none", "null")
CMEXAM_FILES = ("train.csv", "val.csv", "test.csv", "test_with_annotations.csv")


@plugins.LOADERS.register("cmexam")
def load_cmexam(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    skipped: list[int] = []
    prefix = "cmexam" if path.name in CMEXAM_FILES else path.stem
    id_col: list[str] = []  # found on the first row

    def make(line: int, row: dict) -> Sample | None:
        if not id_col:
            id_col.append(next((c for c in row if c.lower() == "id"), ""))
        at = f"{path}:{line}"
        question = text(row["Question"])
        if not question:
            raise UserError(f"{at}: the Question cell is empty; fill it in or delete the row")
        if text(row["Answer"]).lower() in NO_ANSWER:
            skipped.append(line)
            return None
        return Sample(
            id=text(row[id_col[0]]) if id_col[0] else f"{prefix}-{line}",
            question=question,
            options=parse_option_lines(row["Options"], at),
            answer=parse_answer(row["Answer"], at),
            categories={c: text(row[c]) for c in ANNOTATIONS if text(row.get(c))},
            where=where(path, line),
            explanation=row.get("Explanation") or "",
        )

    yield from samples_from_rows(read_table(path, data, required=("Question", "Options", "Answer")), path, make)
    if skipped and first_warning(path, "rows without an answer"):  # once a process: a pipeline reads the file for every checkpoint
        log.warning("%s: skipped %d row(s) with no answer (Answer blank or 'nan'; lines %s); they are "
                    "not items, so counts of the file's rows include them and the item counts do not",
                    path, len(skipped), ", ".join(map(str, skipped[:10])))
