"""CMB-Exam (FreedomIntelligence/CMB), as published: one JSON list of items.

Where the format was read (FreedomIntelligence/CMB on GitHub): ``README.md`` ("CMB-Exam
Item", "Download Data"), ``workers/base.py`` (how items become prompts), ``src/utils.py``
and ``src/generate_answers.py`` (the answers file), ``score.py`` (how submissions are
scored) and ``data/CMB-test-choice-answer.json`` (the test answers' layout).

An item::

    {"exam_type": "医师考试", "exam_class": "执业医师", "exam_subject": "口腔执业医师",
     "question": "...", "answer": "D", "question_type": "单项选择题",
     "option": {"A": "...", "B": "...", "C": "...", "D": "...", "E": "..."}}

* ``question_type`` is 单项选择题 (one answer) or 多项选择题 (several: ``"answer": "ABD"``).
  A 单项选择题 whose answer has more than one letter is a bad row.
* ``option`` may hold blank texts (``"E": ""``) for items with fewer options; CMB's own
  prompt code leaves those out, and so does this loader (the letters of the rest are kept).
* ``exam_type`` (6 major categories), ``exam_class`` (28 subcategories) and
  ``exam_subject`` (department) are the categories of per-category breakdowns.
* The val split (``CMB-Exam/CMB-val/CMB-val-merge.json``, 280 items) adds ``explanation``,
  kept as ``Sample.explanation``. The test split
  (``CMB-Exam/CMB-test/CMB-test-choice-question-merge.json``, 11,200 items) has an integer
  ``id`` and no ``answer``: CMB keeps the answers and scores submissions itself. An item
  without an ``answer`` field is read as an ``UnansweredItem`` whose ``question_type`` (which
  must then be 单项选择题 or 多项选择题) says whether it takes several answers; only a
  ``predict_only`` task accepts such items (the ``cmb_test`` task), and it writes its
  predictions in the file CMB scores (``submission: cmb``, ``cmb_submission``).
  ``write_cmb_submission`` writes that file from any run folder of a CMB task.

Ids: the item's own ``id`` when it has one; else ``cmb-val-<index>`` / ``cmb-test-<index>``
for CMB's own two files and ``<file stem>-<index>`` for any other file in this format
(``index``: the item's position in the list, from 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.runfolder import read_run
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskregistry import SUBMISSIONS, UnansweredItem
from aimed.harness.taskspec import DataSpec

from ._io import where
from ._jsonlist import choice_fields, field_text, read_json_list, samples_from_items

CATEGORIES = ("exam_type", "exam_class", "exam_subject")
SINGLE, MULTI = "单项选择题", "多项选择题"  # one answer; several
CMB_FILES = {"CMB-val-merge.json": "cmb-val", "CMB-test-choice-question-merge.json": "cmb-test"}


@plugins.LOADERS.register("cmb")
def load_cmb(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    items = read_json_list(path, data, "CMB")
    prefix = CMB_FILES.get(path.name, path.stem)

    def make(line: int, index: int, obj: dict) -> Sample:
        at = f"{path}:{line}: item [{index}]"
        # no 'answer' field at all: a test item (whether the task may hold one is the registry's call)
        answered = "answer" in obj
        question, options, answer = choice_fields(obj, "question", "option", at, answer_required=answered)
        qtype = field_text(obj, "question_type", at)
        if qtype == SINGLE and len(answer) > 1:
            raise UserError(f"{at}, field 'answer': {''.join(answer)!r} has {len(answer)} letters but "
                            f"question_type is {SINGLE} (one answer); fix one of the two")
        if not answered and qtype not in (SINGLE, MULTI):
            raise UserError(f"{at}, field 'question_type': {qtype!r} is neither {SINGLE} nor {MULTI}, and the "
                            "item has no answer to tell how many it takes; fix the field")
        categories = {c: field_text(obj, c, at) for c in CATEGORIES}
        explanation = obj.get("explanation")  # kept as written, like CMExam's
        sample_type = Sample if answered else UnansweredItem
        extra = {} if answered else {"multi_answer": qtype == MULTI}
        return sample_type(
            id=field_text(obj, "id", at) or f"{prefix}-{index}",
            question=question,
            options=options,
            answer=answer,
            categories={c: v for c, v in categories.items() if v},
            where=where(path, line),
            explanation=explanation if isinstance(explanation, str) else field_text(obj, "explanation", at),
            **extra,
        )

    yield from samples_from_items(items, path, make)


def write_cmb_submission(run_dir: Path, out_path: Path, task: Optional[str] = None) -> int:
    """Write a run's predictions for a CMB task as the file CMB's leaderboard scores; returns
    the number of items written.

    The format, as read in FreedomIntelligence/CMB: ``README_zh.md`` ("评测和提交结果") says to
    submit the output of ``generate_answers.sh`` on the website
    (https://cmedbenchmark.llmzoo.com/static/submit.html; the English README's earlier text
    says by e-mail to cmedbenchmark@163.com). That output (``src/generate_answers.py``, then
    ``src/utils.py`` ``extract_ans``) is one JSON list, indented, of the test items, each with
    its ``id`` and the extracted ``model_answer`` (option letters, e.g. ``"ABD"``; ``""`` when
    none was found) beside the raw outputs. CMB's ``score.py`` reads only ``id`` and
    ``model_answer`` from it and counts an item right when ``model_answer`` equals the answer
    string exactly. So this writes ``[{"id": ..., "model_answer": "..."}, ...]``: the
    run's prediction (``filtered_resps``) for each item as sorted letters, the id as the
    integer CMB gave it (test ids are integers) or as the text it was.

    A run of ``cmb_test`` (``predict_only``, ``submission: cmb``) writes this file into its
    run folder itself (``submission_cmb_test.json``, through ``cmb_submission``); this writes
    it from any run folder of a CMB task, ``cmb_val`` too. ``task``: which of the run's tasks
    (needed only when the run scored several).
    """
    run = read_run(Path(run_dir))
    tasks = run.leaf_tasks()
    if task is None:
        cmb = [t for t in tasks if t.startswith("cmb")]
        if len(tasks) == 1 or len(cmb) == 1:
            task = tasks[0] if len(tasks) == 1 else cmb[0]
        else:
            raise UserError(f"{run_dir}: the run scored {', '.join(tasks)}; say which is the CMB task (task=...)")
    elif task not in tasks:
        raise UserError(f"{run_dir}: the run has no task {task!r}; it scored {', '.join(tasks)}")
    records = run.samples(task)
    if any("id" not in (record.get("doc") or {}) for record in records):
        raise UserError(f"{run.samples_file(task)}: a record without doc.id; not a samples file aimed-eval wrote")
    out = Path(out_path)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the path of the .json file to write")
    out.write_text(cmb_submission(records), encoding="utf-8")
    return len(records)


@SUBMISSIONS.register("cmb")
def cmb_submission(records: list[dict]) -> str:
    """The text of CMB's submission file (see ``write_cmb_submission``) from a task's sample
    records: one ``{"id", "model_answer"}`` an item, in the records' order."""
    rows = []
    for record in records:
        pred = record.get("filtered_resps")
        letters = "".join(sorted(pred)) if isinstance(pred, (list, tuple)) else ""
        raw_id = str(record["doc"]["id"])
        rows.append({"id": int(raw_id) if raw_id.isdigit() else raw_id, "model_answer": letters})
    return json.dumps(rows, ensure_ascii=False, indent=4) + "\n"
