"""CMB-Clin (FreedomIntelligence/CMB), as published: one JSON list of clinical cases.

Where the format was read (FreedomIntelligence/CMB on GitHub): ``README.md`` (CMB-Clin: clinical
case studies, each a description and several questions), the file itself
(``Data/CME-test-qa/CMB-test-qa.json``; README.md's ``generate_answers.sh`` example reads
it as ``./data/CMB-test-qa/CMB-test-qa.json``)
and ``workers/base.py`` with ``workers/baichuanchat.py`` (``collate_conv``: how the
multi-turn prompt is built). A case::

    {"id": "0", "title": "案例分析-腹外疝", "description": "现病史\\n（1）病史摘要\\n ...",
     "QA_pairs": [{"question": "简述该病人的诊断及诊断依据。", "answer": "诊断：嵌顿性腹股沟斜疝..."},
                  {"question": "简述该病人的鉴别诊断。", "answer": "..."}]}

* One item a question. CMB's ``collate_conv`` puts the description before the first
  question (``description + question``, no separator), and before each later question
  every earlier question with its *reference* answer (not the model's own); this loader
  builds the question text the same way, in the ``问：``/``答：`` roles of CMB's plain
  template (``workers/mymodel.py``: ``问：{instruction}\\n答：``)::

      问：<description><question 1>
      答：<reference answer 1>
      问：<question k>

  and the spec's prompt adds the final ``\\n答：``.
* The reference is ``answer``; CMB's worker code reads the same field as ``solution``, which
  is accepted where ``answer`` is absent. An empty question or reference is a bad item.
* Ids: ``<case id>-<turn>`` (turn from 1), the case id being ``id`` or the case's index in
  the list; categories: ``turn`` (1, 2, ...), so a breakdown shows how later turns fare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import text, where
from ._jsonlist import field_text, read_json_list, require_fields

ASK, ANSWER = "问：", "答："


def qa_pairs(obj: dict, at: str) -> list[tuple[str, str]]:
    pairs = obj["QA_pairs"]
    if not isinstance(pairs, list) or not pairs:
        raise UserError(f"{at}, field 'QA_pairs': expected a non-empty list of {{question, answer}} objects")
    out = []
    for i, pair in enumerate(pairs):
        where_ = f"{at}, field 'QA_pairs' [{i}]"
        if not isinstance(pair, dict):
            raise UserError(f"{where_}: expected an object {{\"question\": ..., \"answer\": ...}}")
        key = "answer" if "answer" in pair else "solution"
        try:
            question, answer = text(pair.get("question")), text(pair.get(key))
        except UserError as exc:
            raise UserError(f"{where_}: {exc.message}") from None
        if not question:
            raise UserError(f"{where_}, 'question': empty; fill it in or remove the pair")
        if not answer:
            raise UserError(f"{where_}, 'answer': empty; every question needs its reference answer")
        out.append((question, answer))
    return out


def turn_text(description: str, pairs: list[tuple[str, str]], k: int) -> str:
    """The question text of turn ``k`` (0-based): the case, the earlier turns with their
    reference answers, then question ``k``."""
    blocks = []
    for i, (question, answer) in enumerate(pairs[: k + 1]):
        asked = f"{ASK}{description}{question}" if i == 0 else f"{ASK}{question}"
        blocks.append(asked if i == k else f"{asked}\n{ANSWER}{answer}")
    return "\n".join(blocks)


@plugins.LOADERS.register("cmbclin")
def load_cmbclin(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    for line, index, obj in read_json_list(path, data, "CMB-Clin"):
        if not isinstance(obj, dict):
            yield BadRow(line, f"item [{index}]: expected a JSON object {{...}}, got {type(obj).__name__}")
            continue
        at = f"{path}:{line}: item [{index}]"
        try:
            require_fields(obj, ("description", "QA_pairs"), at)
            description = field_text(obj, "description", at)
            if not description:
                raise UserError(f"{at}, field 'description': empty; it is the case the questions ask about")
            pairs = qa_pairs(obj, at)
            case = field_text(obj, "id", at) or str(index)
        except UserError as exc:
            prefix = f"{path}:{line}: "
            yield BadRow(line, exc.message[len(prefix):] if exc.message.startswith(prefix) else exc.message)
            continue
        for k, (_, answer) in enumerate(pairs):
            yield Sample(id=f"{case}-{k + 1}", question=turn_text(description, pairs, k), target=answer,
                         categories={"turn": str(k + 1)}, where=where(path, line))
