"""PromptCBLUE (michael-wzhu/PromptCBLUE), as published: JSON Lines, one item a line.

Where the format was read (michael-wzhu/PromptCBLUE on GitHub): ``README.md``,
``src/data/CBLUE任务改造说明与举例.md`` (each dataset's item, with examples),
``datasets/PromptCBLUE/toy_examples/dev.json`` and ``test.json`` (the files as shipped:
``train.json``/``dev.json``/``test.json``, JSON Lines despite the ``.json`` name, every
dataset mixed in one file) and ``src/evaluation/post_generate_process.py`` (which fields
the scorer reads). An item::

    {"input": "找出句子中的微生物类，医疗程序，医院科室，身体部位实体：\\n...",
     "target": "上述句子中的实体包含：\\n微生物类实体：\\n...\\n身体部位实体：体细胞中，正常核型细胞",
     "answer_choices": ["微生物类", "医疗程序", "医院科室", "身体部位"],
     "task_type": "ner", "task_dataset": "CMeEE-V2", "sample_id": "dev-39492"}

* ``input`` is the whole prompt (instruction, text, choices) and becomes the question as it
  is; ``target`` is the reference output. The test split ships ``"target": ""`` (the
  publisher scores submissions itself), so a file whose selected items all have an empty
  target is refused with one line saying so.
* ``data.options.task_dataset`` (a name or a list) picks the datasets a task scores; items
  of other datasets are left out. A selected name no item has is an error naming the
  datasets the file holds.
* ``answer_choices`` is a list of strings or null. For NER items (``task_type: ner``) and
  CHIP-CDN, CHIP-MDCFNPC and IMCS-V2-SR items the scorer needs it (only the entity types,
  terms or attribute values it names count), so it is kept as the item's ``labels`` (never
  put to the model: the prompt is ``input`` alone), which ``cblue_micro_f1`` reads. An NER
  item without choices is a bad row.
* Ids: ``sample_id``; categories: ``task_dataset`` and ``task_type``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import read_jsonl, samples_from_rows, text, where

FIELDS = ("input", "target", "task_dataset", "sample_id")
CHOICES_SCORED = ("CHIP-CDN", "CHIP-MDCFNPC", "IMCS-V2-SR")  # besides NER: their scoring reads answer_choices


def selected_datasets(path: Path, data: DataSpec) -> set[str]:
    """``data.options.task_dataset`` as a set (empty: every dataset)."""
    chosen = data.options.get("task_dataset")
    if chosen is None:
        return set()
    names = [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
        raise UserError(f"{path}: data.options.task_dataset must be a dataset name or a list of them "
                        "(e.g. CMeEE-V2), as the file's task_dataset field spells them")
    return {n.strip() for n in names}


def _field(obj: dict, key: str) -> str:
    try:
        return text(obj.get(key))
    except UserError as exc:
        raise UserError(f"field {key!r}: {exc.message}") from None


def _choices(obj: dict) -> list[str]:
    value = obj.get("answer_choices")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise UserError("field 'answer_choices': expected a list of non-empty strings or null, as the "
                        f"publisher writes it; got {str(value)[:40]!r}")
    return [c.strip() for c in value]


@plugins.LOADERS.register("promptcblue")
def load_promptcblue(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    wanted = selected_datasets(path, data)
    seen: set[str] = set()
    answered = [0]

    def make(line: int, obj: dict) -> Sample | None:
        dataset = _field(obj, "task_dataset")
        seen.add(dataset)
        if wanted and dataset not in wanted:
            return None
        question = _field(obj, "input")
        if not question:
            raise UserError("field 'input': empty; fill it in or delete the line")
        sample_id = _field(obj, "sample_id")
        if not sample_id:
            raise UserError("field 'sample_id': empty; every PromptCBLUE item has one (e.g. dev-1202)")
        task_type = _field(obj, "task_type")
        choices = _choices(obj)
        if task_type == "ner" and not choices:
            raise UserError("field 'answer_choices': an NER item needs its entity types there")
        target = obj.get("target")
        if not isinstance(target, str):
            raise UserError(f"field 'target': expected text, got {type(target).__name__}")
        answered[0] += bool(target.strip())
        cats = {"task_dataset": dataset, **({"task_type": task_type} if task_type else {})}
        return Sample(id=sample_id, question=question, target=target, categories=cats, where=where(path, line),
                      labels=tuple(choices) if task_type == "ner" or dataset in CHOICES_SCORED else ())

    yield from samples_from_rows(read_jsonl(path, data, required=FIELDS), path, make)
    missing = wanted - seen
    if missing:
        raise UserError(f"{path}: no item of task_dataset {', '.join(sorted(missing))}; the file holds "
                        f"{', '.join(sorted(seen)) or 'no items'}; fix data.options.task_dataset in the spec")
    if not answered[0]:
        raise UserError(f"{path}: no selected item has a target, as in PromptCBLUE's test split (the publisher "
                        "keeps its answers); point the task at dev.json, whose items have targets")
