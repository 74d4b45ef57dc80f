"""MLEC-QA (Judenpech/MLEC-QA, EMNLP 2021), as published: one JSON list of questions a file.

Where the format was read (Judenpech/MLEC-QA on GitHub): ``README.md`` (the files and the
record layout) and ``code/control_methods.py``, ``code/retriever.py``,
``code/retrieval_performance.py`` (how the authors' own code reads the files). The data is
on Google Drive, not in the repository; the five subsets are ``Clinic``, ``Stomatology``,
``PublicHealth``, ``TCM`` and ``CWM``, each as ``<Subset>_{train,dev,test}.json``.

A record, per the README::

    {"qid": ..., "qtype": "A1型题" | "B1型题" | "A2型题" | "A3/A4型题",
     "qtext": "...", "qimage": "image or table path, if any",
     "options": {"A": ..., "B": ..., "C": ..., "D": ..., "E": ...}, "answer": "C"}

* One record is one question, with its own ``options`` and one answer letter: the authors'
  code compares ``samp['answer']`` with one option key (``control_methods.py``) and reads
  each record's ``qtext`` and ``options`` on their own (``retriever.py``). A list such as
  ``["C"]`` is read too; more than one letter is a bad row (every NMLEC question type has
  one best answer).
* Shared material: a B1 group's shared options, and an A3/A4 case's shared stem, are not
  stored apart in this layout: each question's record carries its ``options`` (for B1, the
  group's options, repeated) and its ``qtext``. Each record becomes its own item, so each B1
  question is an item whose options are the shared ones, and each A3/A4 question an item
  with whatever ``qtext`` its record holds. Neither the README nor the authors' code says
  whether an A3/A4 record's ``qtext`` repeats the case; the loader adds nothing to it.
* ``qimage`` is not shown to the model (a text model cannot see it); such items are kept,
  as the authors score them.
* Blank option texts are left out (as in the CMB loader); the letters of the rest are kept.

Categories: ``subset`` (from the file name: ``Clinic_test.json`` -> ``Clinic``; another
file name gives its stem) and ``qtype`` (as written).

Ids: ``qid`` as written (else ``<file stem>-<index>``, the record's position from 0). Should
a ``qid`` repeat across the records of one B1 or A3/A4 group (a group id rather than a
question id), its records get ``<qid>-1``, ``<qid>-2``, ... in file order, so each question
keeps a distinct and stable id; a repeated ``qid`` of any other question type is left for
the harness's duplicate-id check to report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator, Union

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import text, where
from ._jsonlist import choice_fields, field_text, read_json_list, samples_from_items

SUBSETS = ("Clinic", "Stomatology", "PublicHealth", "TCM", "CWM")
SHARED_TYPES = ("A3/A4型题", "B1型题")  # questions that share a case (A3/A4) or options (B1)


@plugins.LOADERS.register("mlecqa")
def load_mlecqa(path: Path, data: DataSpec) -> Iterator[Union[Sample, BadRow]]:
    items = read_json_list(path, data, "MLEC-QA")
    subset = next((s for s in SUBSETS if path.name.startswith(f"{s}_")), path.stem)
    ids = _item_ids(items, path.stem)

    def make(line: int, index: int, obj: dict) -> Sample:
        at = f"{path}:{line}: item [{index}]"
        question, options, answer = choice_fields(obj, "qtext", "options", at)
        if len(answer) != 1:
            raise UserError(f"{at}, field 'answer': {''.join(answer)!r}: give the one letter "
                            "of the correct option (MLEC-QA questions have one answer)")
        qtype = field_text(obj, "qtype", at)
        field_text(obj, "qid", at)  # a list or object there is a bad row (_item_ids passed it over)
        return Sample(
            id=ids[index],
            question=question,
            options=options,
            answer=answer,
            categories={"subset": subset, **({"qtype": qtype} if qtype else {})},
            where=where(path, line),
        )

    yield from samples_from_items(items, path, make)


def _item_ids(items: list, stem: str) -> list[str]:
    """Each record's id (see the module doc): the qid, numbered within a B1 or A3/A4 group
    when the group's records share it."""
    def plain(value, key: str) -> str:  # a bad value is reported by make(), not here
        got = value.get(key) if isinstance(value, dict) else None
        return "" if isinstance(got, (list, dict)) else text(got)

    def qid(value) -> str:
        return plain(value, "qid")

    def shared(value) -> bool:
        return plain(value, "qtype") in SHARED_TYPES

    counts: Counter = Counter()
    all_shared: dict[str, bool] = {}
    for _, _, value in items:
        if q := qid(value):
            counts[q] += 1
            all_shared[q] = all_shared.get(q, True) and shared(value)
    grouped = {q for q, n in counts.items() if n > 1 and all_shared[q]}
    seen: Counter = Counter()
    out = []
    for _, index, value in items:
        q = qid(value)
        if q in grouped:
            seen[q] += 1
            out.append(f"{q}-{seen[q]}")
        else:
            out.append(q or f"{stem}-{index}")
    return out
