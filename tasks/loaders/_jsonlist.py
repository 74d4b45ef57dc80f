"""Reading a file that is one JSON list of items (``[{...}, {...}]``), as CMB and MLEC-QA
publish theirs, with the line each item starts on.

``json.load`` would give the items but not where they are; here the list is walked item by
item (``JSONDecoder.raw_decode``), so that a bad item is named by its file, the line it
starts on and its index in the list (``item [3]``, as ``json.load(f)[3]`` would reach it).
A file pretty-printed with one key a line (CMB's) gets a distinct line per item; a file
written on one line (``json.dumps`` without ``indent``) puts every item on line 1, and the
index is what tells them apart.

A problem with the whole file (not a list, broken JSON syntax) is a UserError at once; a
problem with one item is a ``BadRow`` in its place (``samples_from_items``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from aimed.harness.errors import UserError
from aimed.harness.samples import BadRow, Sample
from aimed.harness.taskspec import DataSpec

from ._io import options_from_mapping, parse_answer, read_text, text

Item = tuple[int, int, Any]  # (line the item starts on, index in the list, the decoded value)
_WS = " \t\r\n"


def read_json_list(path: Path, data: DataSpec, publisher: str) -> list[Item]:
    """Every item of the file's top-level JSON list, with its line and index.
    ``publisher`` names the format in messages ("CMB", "MLEC-QA")."""
    text = read_text(path, data)
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if pos == len(text):
        raise UserError(f"{path}: the file is empty; {publisher}'s files are one JSON list [{{...}}, ...]")
    if text[pos] != "[":
        what = ("a JSON object or JSON Lines (one object a line)" if text[pos] == "{"
                else f"text starting {text[pos:pos + 20]!r}")
        raise UserError(f"{path}: not a JSON list: the file holds {what}; {publisher}'s files are one "
                        "JSON list [{...}, {...}] as the publisher ships them")
    items: list[Item] = []
    line, seen = 1, 0  # line number of offset `seen`
    pos = _skip(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        _end(path, text, pos)
        return items
    while True:
        line += text.count("\n", seen, pos)
        seen = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            at = line + text.count("\n", pos, exc.pos)
            raise UserError(f"{path}:{at}: not valid JSON ({exc.msg}) in item [{len(items)}]; "
                            "fix the file's syntax there (or download it again)") from None
        items.append((line, len(items), value))
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            _end(path, text, pos)
            return items
        at = line + text.count("\n", seen, pos)
        raise UserError(f"{path}:{at}: expected ',' or ']' after item [{len(items) - 1}]; the file is "
                        "cut short or not one JSON list (download it again)")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _end(path: Path, text: str, pos: int) -> None:
    """Only whitespace may follow the list's closing ``]`` at ``pos``."""
    rest = _skip(text, pos + 1)
    if rest < len(text):
        at = text.count("\n", 0, rest) + 1
        raise UserError(f"{path}:{at}: text after the end of the JSON list; the file must be one list")


def samples_from_items(items: list[Item], path: Path,
                       make: Callable[[int, int, dict], Optional[Sample]]) -> Iterator[Union[Sample, BadRow]]:
    """Each item through ``make(line, index, obj)``; an item that is not a JSON object, or
    that ``make`` refuses with a UserError, becomes a BadRow (the message without its
    ``path:line:`` prefix, which the harness adds back)."""
    for line, index, value in items:
        if not isinstance(value, dict):
            yield BadRow(line, f"item [{index}]: expected a JSON object {{...}}, got {type(value).__name__}")
            continue
        try:
            sample = make(line, index, value)
        except UserError as exc:
            message = exc.message
            prefix = f"{path}:{line}: "
            yield BadRow(line, message[len(prefix):] if message.startswith(prefix) else message)
            continue
        if sample is not None:
            yield sample


def require_fields(obj: dict, fields: tuple[str, ...], at: str) -> None:
    missing = [f for f in fields if f not in obj]
    if missing:
        raise UserError(f"{at}: missing field {', '.join(repr(f) for f in missing)}; "
                        f"fields found: {', '.join(repr(k) for k in obj) or '(none)'}")


def field_text(obj: dict, key: str, at: str) -> str:
    """``obj[key]`` as stripped text ('' when absent or null); a list or object there is
    refused naming the field."""
    try:
        return text(obj.get(key))
    except UserError as exc:
        raise UserError(f"{at}, field {key!r}: {exc.message}") from None


def options_dropping_blanks(obj: Any, at: str) -> dict[str, str]:
    """A publisher's ``{"A": ..., "E": ""}``: options whose text is blank (``""``, ``" "``,
    null) are left out, as CMB's own prompt code leaves them out (``workers/base.py``
    ``get_single_query``); the rest through ``_io.options_from_mapping``."""
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if not (v is None or (isinstance(v, str) and not v.strip()))}
    return options_from_mapping(obj, at)


def choice_fields(obj: dict, question_key: str, options_key: str, at: str,
                  answer_required: bool = True) -> tuple[str, dict[str, str], tuple]:
    """(question, options, answer letters) of a publisher's multiple-choice record, each
    checked: the fields present, the question not empty, the answer given and among the
    options (blank options left out). ``answer_required=False``: a record of a split whose
    answers the publisher keeps; no 'answer' field, and the letters come back empty."""
    require_fields(obj, (question_key, options_key) + (("answer",) if answer_required else ()), at)
    question = field_text(obj, question_key, at)
    if not question:
        raise UserError(f"{at}, field {question_key!r}: empty; fill it in or remove the item")
    options = options_dropping_blanks(obj[options_key], f"{at}, field {options_key!r}")
    if not answer_required:
        return question, options, ()
    answer = parse_answer(obj["answer"], f"{at}, field 'answer'")
    if not answer:
        raise UserError(f"{at}, field 'answer': empty; give the letter(s) of the correct option(s)")
    missing = [a for a in answer if a not in options]
    if missing:
        raise UserError(f"{at}, field 'answer': {''.join(missing)!r} is not among the options "
                        f"{''.join(options)} (blank options are left out); fix the answer or the options")
    return question, options, answer
