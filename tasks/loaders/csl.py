"""CSL (Chinese scientific literature) triplets, medical papers only.

Layout as published: ``csl/{ts,kg,cls_dcp}/{dev,test}.tsv``, TSV ``prompt<TAB>text_a<TAB>text_b``
with no header; line i is the same paper in all three files of a split (``ts``: abstract ->
title, ``kg``: abstract + title -> keywords joined with ``_``, ``cls_dcp``: abstract -> discipline).

``data.path`` names one split file of any of the three folders, e.g.
``$AIMED_DATA/csl/ts/test.tsv`` (name the folder that fits the target, so that the task's
data hash covers the file its references come from); the loader reads the same-named file of
the other two folders and joins them by line. ``data.options.target`` picks the task:

- ``title``: generation, question = abstract, target = the title;
- ``keywords``: generation, question = abstract, target = keywords joined with ``_``;
- ``discipline``: multiple choice over the medical disciplines (fixed letters below).

Only papers whose discipline is one of ``MEDICAL`` are kept (dev 103, test 106).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import LETTERS, Sample
from aimed.harness.taskspec import DataSpec

from ._io import read_lines, where

PARTS = ("ts", "kg", "cls_dcp")
MEDICAL = ("基础医学/临床医学", "中医学/中药学", "药学", "口腔医学", "公共卫生与预防医学")
DISCIPLINE_LETTER = dict(zip(MEDICAL, LETTERS))
TARGETS = ("title", "keywords", "discipline")


@plugins.LOADERS.register("csl")
def load_csl(path: Path, data: DataSpec) -> Iterator[Sample]:
    target = data.options.get("target")
    if target not in TARGETS:
        raise UserError(f"{path}: the csl loader needs `data.options.target` set to one of "
                        f"{', '.join(TARGETS)} (got {target!r})")
    if path.is_dir() or path.parent.name not in PARTS:
        raise UserError(f"{path}: for the csl loader, data.path names a split file inside the ts, kg "
                        "or cls_dcp folder, e.g. $AIMED_DATA/csl/ts/test.tsv")
    files = {part: path.parent.parent / part / path.name for part in PARTS}
    rows = {part: _read(f, data) for part, f in files.items()}
    counts = {part: len(r) for part, r in rows.items()}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{files[p]} ({n} lines)" for p, n in counts.items())
        raise UserError(f"CSL files of one split must have the same number of lines: {listed}; "
                        "use the three files of the same split, unedited")
    split = path.stem
    for (line, ts), (_, kg), (_, cls) in zip(rows["ts"], rows["kg"], rows["cls_dcp"]):
        abstract, title, discipline, keywords = ts[1], ts[2], cls[2], kg[2]
        if cls[1] != abstract or not kg[1].startswith(abstract):
            raise UserError(f"{files['ts']}:{line}: the abstract differs from line {line} of "
                            f"{files['cls_dcp'] if cls[1] != abstract else files['kg']}; "
                            "the three files must list the same papers in the same order")
        if discipline not in DISCIPLINE_LETTER:
            continue
        sample = Sample(id=f"csl-{split}-{line}", question=abstract, categories={"discipline": discipline},
                        where=f"{_PART_OF[target]}/{where(path, line)}")
        if target == "title":
            sample.target = title
        elif target == "keywords":
            sample.target = keywords
        else:
            sample.options = dict(zip(LETTERS, MEDICAL))
            sample.answer = (DISCIPLINE_LETTER[discipline],)
        yield sample


_PART_OF = {"title": "ts", "keywords": "kg", "discipline": "cls_dcp"}


def _read(path: Path, data: DataSpec) -> list[tuple[int, list[str]]]:
    if not path.exists():
        raise UserError(f"{path}: not found; the csl loader reads ts/, kg/ and cls_dcp/ side by side "
                        "(CSL's benchmark/ layout)")
    out = []
    for line, text in read_lines(path, data):
        fields = [f.strip() for f in text.split("\t")]
        if len(fields) != 3 or not all(fields):
            raise UserError(f"{path}:{line}: expected 3 non-empty tab-separated fields "
                            f"(prompt, text, label), found {len(fields)}; fix the line")
        out.append((line, fields))
    return out
