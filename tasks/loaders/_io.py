"""Reading helpers every loader shares: decoding, CSV/TSV/JSONL rows with line numbers,
option parsing. Each failure is a UserError that names the file, the line and the fix.

A row-level problem (a row with the wrong number of fields, a line that is not JSON, a cell
a loader cannot read) becomes a ``BadRow`` that the loader yields in the row's place
(``samples_from_rows``), so that the harness can list every bad row of a file in one message
or skip them (``taskregistry.collect_rows``). A problem with the whole file (it is empty,
a column is missing, the CSV quoting is broken) is still raised at once.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

from aimed.harness.errors import UserError
from aimed.harness.samples import LETTERS, BadRow, Sample
from aimed.harness.taskspec import DataSpec

Row = Union[dict[str, Any], BadRow]


def read_text(path: Path, data: DataSpec) -> str:
    """The whole file as text in ``data.encoding`` (a UTF-8 BOM is dropped), line ends kept."""
    raw = path.read_bytes()
    enc = data.encoding
    _refuse_non_text(path, raw, enc)
    if enc.lower().replace("_", "-") in ("utf-8", "utf8"):
        enc = "utf-8-sig"
    try:
        return raw.decode(enc)
    except LookupError:
        raise UserError(f"{path}: unknown encoding {data.encoding!r} in the spec's data.encoding; "
                        "use e.g. utf-8 or gb18030") from None
    except UnicodeDecodeError as exc:
        raise UserError(_decode_message(path, raw, data.encoding, exc)) from None


# Files that are not text in any encoding a spec can name, found by their first bytes.
_NOT_TEXT = ((b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?); export the sheet as CSV (UTF-8)"),
             (b"\xd0\xcf\x11\xe0", "an old Excel/Office file (.xls); export the sheet as CSV (UTF-8)"),
             (b"%PDF", "a PDF; give the data as CSV or JSONL"),
             (b"\x1f\x8b", "gzip-compressed; decompress it first"),
             (b"\xff\xfe", "UTF-16 (little-endian) text; re-save it as UTF-8"),
             (b"\xfe\xff", "UTF-16 (big-endian) text; re-save it as UTF-8"))


def _refuse_non_text(path: Path, raw: bytes, enc: str) -> None:
    for magic, what in _NOT_TEXT:
        if raw.startswith(magic) and not ("UTF-16" in what and enc.lower().replace("-", "").startswith("utf16")):
            raise UserError(f"{path}: the file is {what}")


def _decode_message(path: Path, raw: bytes, enc: str, exc: UnicodeDecodeError) -> str:
    bad = raw[exc.start:exc.start + 1].hex()
    guess = ""
    for cand, label in (("gb18030", "GB18030/GBK"), ("big5", "Big5")):
        if cand == enc.lower():
            continue
        try:
            raw.decode(cand)
        except UnicodeDecodeError:
            continue
        guess = f"; it looks like {label}"
        break
    line = raw.count(b"\n", 0, exc.start) + 1
    fix = ("re-save it as UTF-8 or set `data.encoding: gb18030` in the spec" if enc.lower().startswith("utf")
           else "re-save it in that encoding or fix `data.encoding` in the spec")
    return (f"{path}: not {enc.upper() if enc.lower().startswith('utf') else enc} "
            f"(byte 0x{bad} at offset {exc.start}, line {line}{guess}); {fix}")


def where(path: Path, line: int) -> str:
    """The short form kept in ``Sample.where``: ``val.csv:17``."""
    return f"{path.name}:{line}"


# ---------------------------------------------------------------- CSV / TSV

def read_rows(path: Path, data: DataSpec, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """Rows of a quoted CSV, each with the physical line it starts on (1-based); blank lines skipped."""
    reader = csv.reader(io.StringIO(read_text(path, data), newline=""), delimiter=delimiter, strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UserError(f"{path}:{reader.line_num}: malformed CSV ({exc}); check the quotes "
                            "around fields that hold commas, quotes or line breaks") from None
        end = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        yield start, row


def read_table(path: Path, data: DataSpec, required: Sequence[str] = (),
               delimiter: str = ",") -> Iterator[tuple[int, Row]]:
    """Rows of a CSV with a header line, as {column: value} (a BadRow for a row whose field
    count differs from the header's); checks the required columns."""
    rows = read_rows(path, data, delimiter)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{path}: the file is empty; it needs a header line and rows")
    header = [h.strip() for h in first[1]]
    require_columns(path, header, required)
    for line, row in rows:
        if len(row) != len(header):
            yield line, BadRow(line, f"row has {len(row)} fields but the header has {len(header)}; quote "
                                     "fields that hold commas or line breaks (\"...\") and fill missing ones")
            continue
        yield line, dict(zip(header, row))


def require_columns(path: Path, found: Sequence[str], required: Sequence[str], line: Optional[int] = None) -> None:
    missing = [c for c in required if c not in found]
    if missing:
        at = f"{path}:{line}" if line else str(path)
        raise UserError(f"{at}: missing column {', '.join(repr(c) for c in missing)}; "
                        f"columns found: {', '.join(repr(c) for c in found) or '(none)'}")


def read_lines(path: Path, data: DataSpec) -> list[tuple[int, str]]:
    """Non-blank lines without their line ends, each with its 1-based line number."""
    text = read_text(path, data)
    return [(i, ln.rstrip("\r")) for i, ln in enumerate(text.split("\n"), 1) if ln.strip()]


# ---------------------------------------------------------------- JSONL

def read_jsonl(path: Path, data: DataSpec, required: Sequence[str] = ()) -> Iterator[tuple[int, Row]]:
    """One JSON object a line, with its line number; blank lines skipped. A line that is not
    a JSON object, or lacks a required key, comes as a BadRow."""
    for line, text in read_lines(path, data):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, BadRow(line, f"not valid JSON ({exc.msg} at column {exc.colno}); write one JSON object a line")
            continue
        if not isinstance(obj, dict):
            yield line, BadRow(line, f"expected a JSON object {{...}}, got {type(obj).__name__}")
            continue
        missing = [c for c in required if c not in obj]
        if missing:
            yield line, BadRow(line, f"missing column {', '.join(repr(c) for c in missing)}; "
                                     f"columns found: {', '.join(repr(c) for c in obj) or '(none)'}")
            continue
        yield line, obj


def samples_from_rows(rows: Iterable[tuple[int, Row]], path: Path,
                      make: Callable[[int, dict[str, Any]], Optional[Sample]]) -> Iterator[Union[Sample, BadRow]]:
    """Each row through ``make(line, row)`` (None: leave the row out); a row ``make`` refuses
    with a UserError comes out as a BadRow, so the rows after it are still read."""
    for line, row in rows:
        if isinstance(row, BadRow):
            yield row
            continue
        try:
            sample = make(line, row)
        except UserError as exc:
            yield BadRow(line, _without_place(exc.message, path, line))
            continue
        if sample is not None:
            yield sample


def _without_place(message: str, path: Path, line: int) -> str:
    for prefix in (f"{path}:{line}: ", f"{path}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def text(value: Any) -> str:
    """A cell as a stripped string ('' for null). A JSON list or object is refused: its
    Python spelling (``['问']``) would silently become the text."""
    if isinstance(value, (list, dict)):
        shown = json.dumps(value, ensure_ascii=False)
        raise UserError(f"a JSON {'list' if isinstance(value, list) else 'object'} ({shown[:40]}) where text "
                        "was expected; write the field as a string")
    return "" if value is None else str(value).strip()


# ---------------------------------------------------------------- options and answers

_OPTION_LINE = re.compile(r"^\s*([A-Z])(?:[\s.．、:：)）]+(.*))?$", re.S)


def parse_option_lines(cell: str, at: str) -> dict[str, str]:
    """``"A 原发病\\nB 继发病"`` -> {"A": "原发病", "B": "继发病"}; one option a line."""
    options: dict[str, str] = {}
    for raw in cell.splitlines():
        if not raw.strip():
            continue
        m = _OPTION_LINE.match(raw)
        if not m:
            raise UserError(f"{at}: cannot read option line {raw.strip()[:40]!r}; write one option "
                            "a line as 'A text' (letter A-Z, a space, the option)")
        add_option(options, m.group(1), m.group(2), at)
    return options


def add_option(options: dict[str, str], letter: str, value: Any, at: str) -> None:
    if letter in options:
        raise UserError(f"{at}: option {letter} appears twice; give each option its own letter")
    body = text(value)
    if not body:
        raise UserError(f"{at}: option {letter} is empty; fill in its text or remove the option")
    options[letter] = body


def options_from_columns(values: Sequence[Any], at: str, columns: Sequence[str] = ()) -> dict[str, str]:
    """One cell a letter (A, B, ...), any number up to the 26 letters. Trailing empty cells are
    dropped (4- and 5-option items can share a file); an empty cell before a filled one is
    an error, and so is a filled cell beyond Z (named by its column)."""
    cells = [text(v) for v in values]
    while cells and not cells[-1]:
        cells.pop()
    if len(cells) > len(LETTERS):
        col = columns[len(LETTERS)] if len(columns) > len(LETTERS) else f"number {len(LETTERS) + 1}"
        raise UserError(f"{at}: option column {col!r} is beyond the {len(LETTERS)} option letters A-Z; "
                        "give at most 26 options an item")
    options: dict[str, str] = {}
    for letter, cell in zip(LETTERS, cells):
        add_option(options, letter, cell, at)
    return options


def options_from_mapping(obj: Any, at: str) -> dict[str, str]:
    """A JSON object {"A": "...", ...} (or its text)."""
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError:
            raise UserError(f"{at}: options are not a JSON object like {{\"A\": \"...\"}}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{at}: options must be a JSON object like {{\"A\": \"...\", \"B\": \"...\"}}")
    options: dict[str, str] = {}
    for key, value in obj.items():
        letter = str(key).strip().upper()
        if len(letter) != 1 or letter not in LETTERS:
            raise UserError(f"{at}: option key {key!r} is not a letter A-Z")
        add_option(options, letter, value, at)
    return options


_ANSWER_SEP = re.compile(r"[\s,，、;；/|]+")


def parse_answer(value: Any, at: str) -> tuple[str, ...]:
    """"C", "ABD", "A,B", ["A", "B"] -> sorted letters; '' -> ()."""
    if isinstance(value, (list, tuple)):
        value = "".join(str(v) for v in value)
    letters = _ANSWER_SEP.sub("", text(value)).upper()
    bad = [c for c in letters if c not in LETTERS]
    if bad:
        raise UserError(f"{at}: answer {text(value)!r} is not option letters (A-Z); "
                        "write the letter(s) of the correct option(s), e.g. C or ABD")
    return tuple(sorted(set(letters)))
