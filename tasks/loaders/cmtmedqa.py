"""CMtMedQA's test set (SupritYoung/Zhongjing), as published: one JSON list of dialogues.

Where the format was read: SupritYoung/Zhongjing on GitHub, ``README.md`` (CMtMedQA:
multi-turn doctor-patient dialogues, the test set released beside the model) and
``data/CMtMedQA_test.json`` itself (``data/huatuo26M_test.json`` beside it is the same
Alpaca-style layout). ``src/train_sft.py`` builds its prompts in a ``utils`` module the
repository does not hold, so the rendering below is this harness's own. An item::

    {"id": "j4219", "cate1": "肿瘤科", "cate2": "肿瘤科",
     "instruction": "我知道了，谢谢医生的解答。", "input": "",
     "output": "不客气，如果您有任何其他问题，...",
     "history": [["医生，我得了恶性乳腺癌中期，...", "您好，针对恶性乳腺癌的治疗方案..."], ...]}

* One item a dialogue: the question is its last patient turn (``instruction``, with
  ``input`` on a new line when that is not empty), the target the doctor's reply
  (``output``).
* ``history`` (earlier turns, oldest first, each ``[patient, doctor]``; may be empty or
  absent) goes into the question before that turn, one line a turn, rendered as::

      患者：<patient turn 1>
      医生：<doctor turn 1>
      ...
      患者：<instruction>

  so that the spec's prompt (``{input}\\n医生：``) asks for the doctor's next turn. A turn's
  own line breaks are kept.
* Ids: ``id`` (``j4219``), else ``cmtmedqa-<index>``; categories: ``cate1`` (department)
  and ``cate2`` (sub-department). A bad item is named by file, line, index and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import where
from ._jsonlist import field_text, read_json_list, require_fields, samples_from_items

PATIENT, DOCTOR = "患者：", "医生："


def history_turns(obj: dict, at: str) -> list[tuple[str, str]]:
    """``history`` as (patient, doctor) pairs; [] when absent or null."""
    value = obj.get("history")
    if value is None:
        return []
    if not isinstance(value, list):
        raise UserError(f"{at}, field 'history': expected a list of [patient, doctor] pairs")
    turns = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(t, str) and t.strip() for t in pair)):
            raise UserError(f"{at}, field 'history': turn [{i}] is not a [patient, doctor] pair of non-empty "
                            "texts")
        turns.append((pair[0].strip(), pair[1].strip()))
    return turns


def render_dialogue(turns: list[tuple[str, str]], last: str) -> str:
    lines = [f"{PATIENT}{p}\n{DOCTOR}{d}" for p, d in turns]
    return "\n".join(lines + [f"{PATIENT}{last}"])


@plugins.LOADERS.register("cmtmedqa")
def load_cmtmedqa(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    items = read_json_list(path, data, "CMtMedQA")

    def make(line: int, index: int, obj: dict) -> Sample:
        at = f"{path}:{line}: item [{index}]"
        require_fields(obj, ("instruction", "output"), at)
        last = field_text(obj, "instruction", at)
        if not last:
            raise UserError(f"{at}, field 'instruction': empty; it is the patient's last turn")
        extra = field_text(obj, "input", at)
        if extra:
            last = f"{last}\n{extra}"
        target = field_text(obj, "output", at)
        if not target:
            raise UserError(f"{at}, field 'output': empty; it is the doctor's reply the answer is scored against")
        cats = {c: field_text(obj, c, at) for c in ("cate1", "cate2")}
        return Sample(id=field_text(obj, "id", at) or f"cmtmedqa-{index}",
                      question=render_dialogue(history_turns(obj, at), last), target=target,
                      categories={c: v for c, v in cats.items() if v}, where=where(path, line))

    yield from samples_from_items(items, path, make)
