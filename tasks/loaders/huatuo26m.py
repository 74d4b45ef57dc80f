"""Huatuo-26M's test set (FreedomIntelligence/Huatuo-26M), as published: JSON Lines.

Where the format was read: FreedomIntelligence/Huatuo-26M ``README_en.md`` ("Each
question-answer pair ... contains the following fields: questions: Problem Description;
answers: Doctor/Expert Answers"; the test set is the Hugging Face dataset
``FreedomIntelligence/huatuo26M-testdatasets``, 6k pairs sampled from every source), and the
same publisher's loading script of its sibling dataset (``huatuo_encyclopedia_qa``'s
``my_dataset.py``: ``test_datasets.jsonl``, one JSON object a line, ``questions`` and
``answers`` declared as lists of strings). A line::

    {"questions": "做了腰间盘穿丁手术后，用盐泡脚可以吗", "answers": "问题分析：..."}

* ``questions`` and ``answers`` are each a string or a list of strings. A list's first
  non-empty entry is used (a list holds phrasings of one question, and one answer); an
  empty question or answer is a bad row.
* Generation: the question is the patient's question, the target the doctor's answer.
* Ids: the line's own ``id`` when it has one, else ``huatuo26m-<line>``; no categories
  (the test file carries none).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import read_jsonl, samples_from_rows, text, where


def first_text(obj: dict, key: str) -> str:
    """``obj[key]`` as text: a string, or a list's first non-empty string; '' when none."""
    value: Any = obj.get(key)
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise UserError(f"field {key!r}: a list that holds something other than text; "
                            "write the text(s) as strings")
        return next((v.strip() for v in value if v.strip()), "")
    try:
        return text(value)
    except UserError as exc:
        raise UserError(f"field {key!r}: {exc.message}") from None


@plugins.LOADERS.register("huatuo26m")
def load_huatuo26m(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    def make(line: int, obj: dict) -> Sample:
        question, answer = first_text(obj, "questions"), first_text(obj, "answers")
        for key, value in (("questions", question), ("answers", answer)):
            if not value:
                raise UserError(f"field {key!r}: empty; fill it in or delete the line")
        return Sample(id=text(obj.get("id")) or f"huatuo26m-{line}", question=question, target=answer,
                      where=where(path, line))

    yield from samples_from_rows(read_jsonl(path, data, required=("questions", "answers")), path, make)
