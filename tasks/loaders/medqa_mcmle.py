"""MedQA, mainland China split (MCMLE), JSONL as published in MedQA's
``data_clean/questions/Mainland/{train,dev,test}.jsonl``: ``question``, ``options``
({"A": ..., "E": ...}), ``answer`` (the option text), ``answer_idx`` (its letter), ``meta_info``.

The answer text must agree with ``options[answer_idx]``; ``meta_info`` is the category.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import options_from_mapping, parse_answer, read_jsonl, samples_from_rows, text, where


@plugins.LOADERS.register("medqa_mcmle")
def load_medqa_mcmle(path: Path, data: DataSpec) -> Iterator[Sample | BadRow]:
    def make(line: int, obj: dict) -> Sample:
        at = f"{path}:{line}"
        options = options_from_mapping(obj["options"], at)
        answer = parse_answer(obj["answer_idx"], at)
        gold_text = text(obj.get("answer"))
        if gold_text and len(answer) == 1 and answer[0] in options and options[answer[0]] != gold_text:
            raise UserError(f"{at}: answer {gold_text!r} differs from option {answer[0]} "
                            f"({options[answer[0]]!r}); fix 'answer' or 'answer_idx'")
        cats = {"meta_info": text(obj["meta_info"])} if text(obj.get("meta_info")) else {}
        return Sample(
            id=text(obj.get("id")) or f"medqa-{line}",
            question=text(obj["question"]),
            options=options,
            answer=answer,
            categories=cats,
            where=where(path, line),
        )

    yield from samples_from_rows(read_jsonl(path, data, required=("question", "options", "answer_idx")), path, make)
