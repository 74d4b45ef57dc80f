"""Preference pairs for ``rm`` and ``dpo`` (and the prompts ``ppo`` samples from).

Formats (one per file, told by the first record's keys), as in
``$AIMED_DATA/train/preference/``:

- ``question`` / ``response_chosen`` / ``response_rejected`` (MedicalGPT's reward data;
  optional ``system``, ``history`` as ``[[question, answer], ...]``);
- ``conversations`` / ``chosen`` / ``rejected``: ShareGPT messages ending with the human
  turn the two responses answer;
- ``prompt`` / ``chosen`` / ``rejected``: plain strings (trl's format).

A record without a field its format needs is a UserError naming the file, line and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError

from .data_files import field_text, read_records
from .sft_data import conversation_turns, render

FORMATS = {
    "question": ("question", "response_chosen", "response_rejected"),
    "conversations": ("conversations", "chosen", "rejected"),
    "prompt": ("prompt", "chosen", "rejected"),
}


@dataclass
class PreferencePair:
    """One prompt (``question`` after ``history``) with a better and a worse response."""

    where: str
    question: str
    chosen: str
    rejected: str
    history: list[tuple[str, str]] = field(default_factory=list)
    system: Optional[str] = None
    raw_prompt: bool = False  # ``prompt`` format: the question is the whole prompt text

    def prompt(self, template_name: str, tokenizer=None) -> str:
        """The prompt text the responses continue, in the chat template's layout."""
        if self.raw_prompt:
            return self.question
        return render(template_name, [*self.history, (self.question, None)], self.system, tokenizer)


def read_pairs(path: Path, limit: Optional[int] = None) -> list[PreferencePair]:
    pairs: list[PreferencePair] = []
    fmt = None
    for where, rec in read_records(path, limit):
        if fmt is None:
            fmt = next((k for k in FORMATS if k in rec), None)
            if fmt is None:
                raise UserError(f"{where}: unknown preference format (keys {', '.join(sorted(rec)) or 'none'}); "
                                "give question/response_chosen/response_rejected, conversations/chosen/rejected "
                                "or prompt/chosen/rejected")
        pairs.append(_pair(rec, where, fmt))
    if not pairs:
        raise UserError(f"{path}: no preference pairs (empty file); give at least one record")
    return pairs


def _pair(rec: dict, where: str, fmt: str) -> PreferencePair:
    needs = "a pair of this file needs " + ", ".join(FORMATS[fmt])
    if fmt == "conversations":
        if "conversations" not in rec:
            raise UserError(f"{where}: missing field 'conversations' ({needs})")
        turns, system, question = conversation_turns(rec["conversations"], where, open_end=True)
        return PreferencePair(where, question, field_text(rec, "chosen", where, needs),
                              field_text(rec, "rejected", where, needs), turns, system)
    chosen_key, rejected_key = FORMATS[fmt][1:]
    question = field_text(rec, fmt, where, needs)
    chosen, rejected = field_text(rec, chosen_key, where, needs), field_text(rec, rejected_key, where, needs)
    if fmt == "prompt":
        return PreferencePair(where, question, chosen, rejected, raw_prompt=True)
    history = rec.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, (list, tuple)) and len(h) == 2 for h in history):
        raise UserError(f"{where}: field 'history' should be a list of [question, answer] pairs")
    return PreferencePair(where, question, chosen, rejected, [(str(q), str(a)) for q, a in history],
                          rec.get("system") or None)


def read_all_pairs(files: list[Path], limit: Optional[int]) -> tuple[list[PreferencePair], dict]:
    """Pairs of every file (at most ``limit`` each) and ``{file: pairs used}``."""
    pairs, counts = [], {}
    for f in files:
        got = read_pairs(f, limit)
        pairs += got
        counts[f] = len(got)
    return pairs, counts
