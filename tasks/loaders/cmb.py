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
  ``id`` and no ``answer``: CMB keeps the answers and scores submissions itself. The harness
  scores only answered items, so a file with no answers at all is refused with one line
  saying so, and there is no test-split task; ``write_cmb_submission`` turns a run's
  predictions into the file CMB scores.

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
from aimed.harness.taskspec import DataSpec

from ._io import where
from ._jsonlist import choice_fields, field_text, read_json_list, samples_from_items

CATEGORIES = ("exam_type", "exam_class", "exam_subject")
SINGLE = "单项选择题"  # one answer; 多项选择题: several
CMB_FILES = {"CMB-val-merge.json": "cmb-val", "CMB-test-choice-question-merge.json": "cmb-test"}


@plugins.LOADERS.register("cmb")
def load_cmb(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    items = read_json_list(path, data, "CMB")
    objects = [obj for _, _, obj in items if isinstance(obj, dict)]
    if objects and not any("answer" in obj for obj in objects):
        raise UserError(f"{path}: no item has an 'answer' field, as in CMB's test split, whose answers CMB "
                        "keeps to score submissions itself; the harness scores answered items only, so point "
                        "the task at CMB-Exam/CMB-val/CMB-val-merge.json (the cmb_val task)")
    prefix = CMB_FILES.get(path.name, path.stem)

    def make(line: int, index: int, obj: dict) -> Sample:
        at = f"{path}:{line}: item [{index}]"
        question, options, answer = choice_fields(obj, "question", "option", at)
        qtype = field_text(obj, "question_type", at)
        if qtype == SINGLE and len(answer) > 1:
            raise UserError(f"{at}, field 'answer': {''.join(answer)!r} has {len(answer)} letters but "
                            f"question_type is {SINGLE} (one answer); fix one of the two")
        categories = {c: field_text(obj, c, at) for c in CATEGORIES}
        explanation = obj.get("explanation")  # kept as written, like CMExam's
        return Sample(
            id=field_text(obj, "id", at) or f"{prefix}-{index}",
            question=question,
            options=options,
            answer=answer,
            categories={c: v for c, v in categories.items() if v},
            where=where(path, line),
            explanation=explanation if isinstance(explanation, str) else field_text(obj, "explanation", at),
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

    The harness cannot score CMB's unanswered test items today, so a run on the test split
    cannot be made with it yet; on a run of ``cmb_val`` (or any CMB-format file) this writes
    that run's predictions in the same format. ``task``: which of the run's tasks (needed only
    when the run scored several).
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
    rows = []
    for record in run.samples(task):
        doc = record.get("doc") or {}
        if "id" not in doc:
            raise UserError(f"{run.samples_file(task)}: a record without doc.id; not a samples file aimed-eval wrote")
        pred = record.get("filtered_resps")
        letters = "".join(sorted(pred)) if isinstance(pred, (list, tuple)) else ""
        raw_id = str(doc["id"])
        rows.append({"id": int(raw_id) if raw_id.isdigit() else raw_id, "model_answer": letters})
    out = Path(out_path)
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give the path of the .json file to write")
    out.write_text(json.dumps(rows, ensure_ascii=False, indent=4) + "\n", encoding="utf-8")
    return len(rows)
