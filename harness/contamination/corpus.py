"""Streaming readers of training files: every format the trainers read, plus CSV/TSV and gzip.

What counts as training text: every string value of a JSON record, at any depth (``text``;
``instruction``/``input``/``output``; ShareGPT ``conversations``; preference pairs
``question``/``response_chosen``/``response_rejected`` and ``conversations``/``chosen``/
``rejected``; and any layout not listed), every line of a text file, every cell of a
CSV/TSV file. No schema is needed, so a new trainer format is scanned without a change
here; the few non-text strings (``"from": "human"``) match no exam item.

Memory: a file is read in blocks of about ``BLOCK_BYTES`` ending at a line break and
handed on as chunks of segments, so a scan holds one chunk however large the corpus (one
line is never split: the longest line, or the largest element of a JSON array, is the
bound). Encodings: UTF-8 with or without a BOM, else GB18030, decided on the first block.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import json.scanner
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import UserError

BLOCK_BYTES = 1 << 20  # about 330k Chinese characters: a chunk the vectorised scanner keeps in cache
MAX_ELEMENT_CHARS = 64 << 20  # one element of a JSON array; beyond it the file is refused, not buffered
FORMATS = {".txt": "text", ".text": "text", ".md": "text", ".jsonl": "json", ".json": "json",
           ".csv": "csv", ".tsv": "tsv"}
FORMATS_HELP = (".txt/.text/.md (one segment a line), .json/.jsonl (JSON records, one a line, or a JSON "
                "array), .csv/.tsv, or any of these compressed as .gz")

Progress = Optional[Callable[[int], None]]  # called with bytes read from disk since the last call


@dataclass(frozen=True)
class TrainingFile:
    """A training file checked to be readable text of a known format."""

    path: Path
    format: str  # text | json | csv | tsv
    gzipped: bool
    encoding: str  # utf-8 | gb18030
    size: int  # bytes on disk (compressed for .gz): what the progress bar counts


def check_files(paths: list[Path]) -> list[TrainingFile]:
    """Each path as a ``TrainingFile``; a UserError naming the first unusable one and the fix.
    Checked before any scanning, so a mistake is said at once and nothing is written."""
    if not paths:
        raise UserError("--data: give at least one training file")
    return [check_file(Path(p)) for p in paths]


def check_file(path: Path) -> TrainingFile:
    if not path.exists():
        raise UserError(f"--data {path}: not found; give the path of a training file")
    if path.is_dir():
        raise UserError(f"--data {path}: is a folder; give the training files in it (e.g. {path}/*.jsonl)")
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    inner = suffixes[-2] if gzipped and len(suffixes) > 1 else (suffixes[-1] if suffixes and not gzipped else "")
    fmt = FORMATS.get(inner)
    if fmt is None:
        kind = f"'{''.join(path.suffixes[-2:] if gzipped else path.suffixes[-1:])}'" if path.suffix else "no suffix"
        raise UserError(f"--data {path}: unknown training-data format ({kind}); give {FORMATS_HELP}")
    try:
        size = path.stat().st_size
        with _open(path, gzipped) as raw:
            head = raw.read(BLOCK_BYTES)  # the first block only, cut wherever it ends
    except PermissionError:
        raise UserError(f"--data {path}: cannot be read (permission denied); fix its permissions") from None
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        what = "not a gzip file" if gzipped else f"cannot be read ({exc})"
        raise UserError(f"--data {path}: {what}; give {FORMATS_HELP}") from None
    if not head.strip():
        raise UserError(f"--data {path}: is empty; give a file that holds training text")
    if b"\x00" in head:
        raise UserError(f"--data {path}: is binary, not UTF-8 or GB18030 text; give training text, converted to UTF-8")
    return TrainingFile(path, fmt, gzipped, _encoding(path, head), size)


def _encoding(path: Path, head: bytes) -> str:
    for encoding in ("utf-8", "gb18030"):
        try:  # not final: the block may end inside a character
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise UserError(f"--data {path}: is not UTF-8 or GB18030 text; convert it to UTF-8")


def _open(path: Path, gzipped: bool):
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_chunks(tf: TrainingFile, progress: Progress = None) -> Iterator[list[str]]:
    """The file's training text as lists of segments, about ``BLOCK_BYTES`` of text each."""
    reader = {"text": _text_chunks, "json": _json_chunks, "csv": _csv_chunks, "tsv": _csv_chunks}[tf.format]
    yield from reader(tf, progress)


def _blocks(tf: TrainingFile, progress: Progress) -> Iterator[str]:
    """Decoded blocks of whole lines (each ends at a line break or at the end of the file);
    the BOM is dropped. Splitting at b"\\n" is safe in both encodings: neither uses that
    byte inside a multi-byte character."""
    raw = open(tf.path, "rb")
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if tf.gzipped else raw
    decode = codecs.getdecoder(tf.encoding)
    done, reported, first = 0, 0, True
    try:
        while True:
            try:
                data = stream.read(BLOCK_BYTES)
                if data and not data.endswith(b"\n"):
                    data += stream.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise UserError(f"--data {tf.path}: damaged ({exc}); give an intact file") from None
            if not data:
                return
            try:
                text = decode(data)[0]
            except UnicodeDecodeError as exc:
                raise UserError(f"--data {tf.path}: not {tf.encoding.upper()} text after byte {done + exc.start} of "
                                "its text; convert the whole file to UTF-8") from None
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = False
            done += len(data)
            if progress is not None:  # bytes on disk: compressed ones for a .gz
                at = raw.tell()
                progress(at - reported)
                reported = at
            yield text
    finally:
        stream.close()
        raw.close()


def _text_chunks(tf: TrainingFile, progress: Progress) -> Iterator[list[str]]:
    # A line is a segment. "\r" of CRLF files is a control character, dropped by the
    # normaliser like any other, so it needs no handling here.
    for text in _blocks(tf, progress):
        yield text.split("\n")


def _json_chunks(tf: TrainingFile, progress: Progress) -> Iterator[list[str]]:
    blocks = _blocks(tf, progress)
    first = next(blocks, "")
    # One JSON value a line, read with the C scanner json.loads ends in, called at offsets of
    # the whole block: no string a line, no Python layers a record (2-3x json.loads a line).
    scan = json.scanner.make_scanner(json.JSONDecoder())
    if first.lstrip().startswith("[") and not _array_lines(scan, first):
        yield from _json_array_chunks(tf, first, blocks)
        return
    lines_before = 0
    for text in _chain(first, blocks):
        segments: list[str] = []
        append = segments.append
        i, size = 0, len(text)
        while i < size:
            start = i
            try:
                record, i = scan(text, i)
            except StopIteration:  # blank space before a record, or not JSON
                i = _SPACE.match(text, start).end()
                if i == start:
                    _bad_line(tf, text, start, lines_before)
                continue
            except ValueError:
                _bad_line(tf, text, start, lines_before)
            if i < size and text[i] != "\n":
                end = _LINE_END.match(text, i)
                if end is None:
                    _bad_line(tf, text, start, lines_before)
                i = end.end()
            else:
                i += 1
            if text.find("\n", start, i - 1) != -1:  # a record over several lines is no JSONL
                _bad_line(tf, text, start, lines_before)
            if type(record) is dict:  # the usual record, inline: a call less a record
                for value in record.values():
                    if type(value) is str:
                        append(value)
                    else:
                        _strings(value, segments)
            else:
                _strings(record, segments)
        lines_before += text.count("\n")
        yield segments


def _array_lines(scan, first: str) -> bool:
    """Whether a file that starts with "[" holds one JSON array a line (JSON lines whose
    records are arrays) rather than one array: its first line is a whole value, and more
    follows."""
    start = first.index("[")
    newline = first.find("\n", start)
    if newline == -1 or not first[newline:].strip():
        return False
    try:
        return scan(first, start)[1] <= newline
    except (StopIteration, ValueError):
        return False


_SPACE = re.compile(r"[ \t\r\n]*")
_LINE_END = re.compile(r"[ \t\r]*(?:\n|\Z)")


def _bad_line(tf: TrainingFile, text: str, pos: int, lines_before: int) -> None:
    """Raise the UserError for the line of ``text`` holding ``pos``, with json's reason."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start:line_end if line_end != -1 else len(text)]
    lineno = lines_before + text.count("\n", 0, line_start) + 1
    try:
        json.loads(line)
        reason = "a record spans several lines" if line.strip() else "blank"
    except ValueError as exc:
        reason = str(exc)
    raise UserError(f"--data {tf.path}:{lineno}: not a JSON record ({reason}); give one JSON object a line, "
                    "or one JSON array")


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _json_array_chunks(tf: TrainingFile, first: str, blocks: Iterator[str]) -> Iterator[list[str]]:
    """Elements of one top-level JSON array, decoded one at a time from a sliding buffer, so
    a pretty-printed array of any size is read in bounded memory (an element at a time).
    Blocks end at line breaks and no JSON token spans one, so a failure at the buffer's end
    is an element continuing in the next block; a failure before it is bad JSON."""
    decoder = json.JSONDecoder()
    buf, pos = first, first.index("[") + 1
    after = "["  # what came last: "[", "," or a value ("v")
    item = 0
    segments: list[str] = []
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n":
            pos += 1
        if pos >= len(buf):
            nxt = next(blocks, None)
            if nxt is None:
                raise UserError(f"--data {tf.path}: the JSON array ends without its closing ']' (after element "
                                f"{item}); give a complete JSON array, or one object a line")
            buf, pos = nxt, 0
            continue
        ch = buf[pos]
        if ch == "]" and after != ",":
            if segments:
                yield segments
            if buf[pos + 1:].strip() or any(b.strip() for b in blocks):
                raise UserError(f"--data {tf.path}: text after the JSON array's closing ']'; give one array")
            return
        if after == "v":
            if ch != ",":
                raise UserError(f"--data {tf.path}: element {item} of the JSON array is not followed by ',' or "
                                "']'; fix the file's JSON")
            pos, after = pos + 1, ","
            continue
        try:
            value, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            nxt = next(blocks, None) if exc.pos >= len(buf.rstrip()) else None
            if nxt is None or len(buf) - pos > MAX_ELEMENT_CHARS:
                raise UserError(f"--data {tf.path}: element {item + 1} of the JSON array is not valid JSON "
                                f"({exc.msg}); fix the file's JSON") from None
            buf, pos = buf[pos:] + nxt, 0
            continue
        item += 1
        _strings(value, segments)
        pos, after = end, "v"
        if pos > BLOCK_BYTES:  # hand on a chunk, forget what was decoded
            buf, pos = buf[pos:], 0
            yield segments
            segments = []


def _strings(value, out: list[str]) -> None:
    """Every string value inside ``value`` (dict keys are field names, not text)."""
    if type(value) is str:
        out.append(value)
    elif type(value) is dict:
        for v in value.values():
            if type(v) is str:
                out.append(v)
            else:
                _strings(v, out)
    elif type(value) is list:
        for v in value:
            _strings(v, out)


def _csv_chunks(tf: TrainingFile, progress: Progress) -> Iterator[list[str]]:
    """Every cell a segment. TSV is split on tabs only (no quoting), as TSV writers intend;
    CSV follows the csv module's quoting, so a quoted cell may span lines."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_ELEMENT_CHARS))  # a long cell is text, not an error
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tf.format == "tsv" else {}
    segments: list[str] = []
    size = 0
    try:
        for row in csv.reader(_lines(_blocks(tf, progress)), **options):
            segments.extend(row)
            size += sum(map(len, row))
            if size >= BLOCK_BYTES // 3:  # characters, about a block of CJK UTF-8
                yield segments
                segments, size = [], 0
    except csv.Error as exc:
        raise UserError(f"--data {tf.path}: not readable as {tf.format.upper()} ({exc}); fix the file") from None
    if segments:
        yield segments


def _lines(blocks: Iterator[str]) -> Iterator[str]:
    for text in blocks:
        for line in io.StringIO(text, newline=""):
            yield line
