"""CMExam CSV, as published: ``Question, Options, Answer, Explanation`` (+ annotation columns).

UTF-8 with BOM, CRLF; ``Options`` is a quoted multi-line cell, one ``A 原发病`` a line;
``Answer`` is one letter or several (``ABD``). The annotated test file adds ``Disease Group,
Area of Competency, Clinical Department, Medical Discipline, Difficulty level``, which become
``Sample.categories`` when non-empty. A row whose Answer is blank or ``nan`` (an empty cell
written out by pandas; val.csv has one) has no gold and is skipped with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import Sample
from aimed.harness.taskspec import DataSpec

from ._io import parse_answer, parse_option_lines, read_table, text, where

log = logging.getLogger(__name__)

ANNOTATIONS = ("Disease Group", "Area of Competency", "Clinical Department", "Medical Discipline",
               "Difficulty level")
NO_ANSWER = ("", "nan", "none", "null")


@plugins.LOADERS.register("cmexam")
def load_cmexam(path: Path, data: DataSpec) -> Iterator[Sample]:
    skipped = []
    id_col = None
    for line, row in read_table(path, data, required=("Question", "Options", "Answer")):
        if id_col is None:
            id_col = next((c for c in row if c.lower() == "id"), "")
        at = f"{path}:{line}"
        question = text(row["Question"])
        if not question:
            raise UserError(f"{at}: the Question cell is empty; fill it in or delete the row")
        if text(row["Answer"]).lower() in NO_ANSWER:
            skipped.append(line)
            continue
        yield Sample(
            id=text(row[id_col]) if id_col else f"cmexam-{line}",
            question=question,
            options=parse_option_lines(row["Options"], at),
            answer=parse_answer(row["Answer"], at),
            categories={c: text(row[c]) for c in ANNOTATIONS if text(row.get(c))},
            where=where(path, line),
        )
    if skipped:
        log.warning("%s: skipped %d row(s) with no answer (lines %s)", path, len(skipped),
                    ", ".join(map(str, skipped[:10])))
