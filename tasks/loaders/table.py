"""A user's own benchmark, no Python: a CSV/TSV (with a header) or JSONL file, chosen by the
file's extension, whose columns the spec's ``data.columns`` names (see ``ColumnMap``)::

    data:
      loader: table
      path: my_exam.csv
      columns: {question: 题目, options: [A, B, C, D], answer: 答案, categories: [科室]}

``columns.options`` is one column of ``A xx`` lines, a JSON-object column ({"A": ..}), or a
list of columns, one a letter. Without options the item is generation and its reference is
``columns.target`` (or, when that is unset, ``columns.answer``). Ids default to
``<file stem>-<line>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from aimed.harness import plugins
from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import ColumnMap, DataSpec

from ._io import (options_from_columns, options_from_mapping, parse_answer, parse_option_lines, read_jsonl,
                  read_table, samples_from_rows, text, where)

CSV_EXT = {".csv": ",", ".tsv": "\t"}
JSONL_EXT = (".jsonl", ".json", ".ndjson")


@plugins.LOADERS.register("table")
def load_table(path: Path, data: DataSpec) -> Iterator[Sample | BadRow]:
    cols = data.columns or ColumnMap()
    target_col = cols.target or (cols.answer if cols.options is None else None)
    if cols.options is None and not target_col:
        raise UserError(f"{path}: the spec's data.columns sets neither options nor target; "
                        "name the options column(s) (multiple choice) or the target column (generation)")
    opt_cols = [cols.options] if isinstance(cols.options, str) else list(cols.options or [])
    required = [cols.question, *opt_cols]
    required += [cols.answer] if cols.options is not None and cols.answer else []
    required += [target_col] if target_col else []
    required += [cols.id] if cols.id else []

    suffix = path.suffix.lower()
    if suffix in CSV_EXT:
        rows: Iterator[tuple[int, Any]] = read_table(path, data, required + list(cols.categories), CSV_EXT[suffix])
    elif suffix in JSONL_EXT:
        rows = read_jsonl(path, data, required)
    else:
        raise UserError(f"{path}: the table loader reads .csv, .tsv or .jsonl files (by extension); "
                        "rename the file or convert it")
    seen_keys: set[str] = set()  # JSONL: which category keys occur at all

    def make(line: int, row: dict[str, Any]) -> Sample:
        seen_keys.update(row)
        at = f"{path}:{line}"
        question = text(row[cols.question])
        if not question:
            raise UserError(f"{at}: column {cols.question!r} (the question) is empty")
        sample = Sample(
            id=text(row[cols.id]) if cols.id else f"{path.stem}-{line}",
            question=question,
            categories={c: text(row.get(c)) for c in cols.categories if text(row.get(c))},
            where=where(path, line),
        )
        if cols.options is not None:
            sample.options = _options(row, cols.options, at)
            sample.answer = parse_answer(row[cols.answer], at) if cols.answer else ()
        if target_col:
            sample.target = text(row[target_col])
        return sample

    yield from samples_from_rows(rows, path, make)
    never = [c for c in cols.categories if c not in seen_keys]
    if suffix in JSONL_EXT and seen_keys and never:
        # a CSV header names its columns up front; in JSONL a category no row has is the same mistake
        raise UserError(f"{path}: missing column {', '.join(repr(c) for c in never)} (named in "
                        f"data.columns.categories); no row has it; keys found: "
                        f"{', '.join(repr(c) for c in sorted(seen_keys))}")


def _options(row: dict[str, Any], spec: str | list[str], at: str) -> dict[str, str]:
    if isinstance(spec, list):
        return options_from_columns([row[c] for c in spec], at, spec)
    cell = row[spec]
    if isinstance(cell, dict) or (isinstance(cell, str) and cell.lstrip().startswith("{")):
        return options_from_mapping(cell, at)
    if not isinstance(cell, str):
        raise UserError(f"{at}: column {spec!r} holds {type(cell).__name__}; give options as "
                        "'A xx' lines or a JSON object")
    return parse_option_lines(cell, at)
