"""The unit of evaluation data: one benchmark item, whatever its publisher's format."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

# Option letters, in order. A file with more options than letters is refused by the
# loaders (naming the column), never cut short.
LETTERS = string.ascii_uppercase


@dataclass
class Sample:
    """One item. Loaders turn a publisher's rows into these; nothing else reads raw files.

    Multiple choice: ``options`` maps letters to option texts and ``answer`` holds the
    gold letters, sorted (several for a multi-answer item). Generation: ``target`` is
    the reference text and ``options``/``answer`` are empty. ``explanation`` is the
    publisher's explanation of the answer where it gives one (CMExam's ``Explanation``,
    as written, unstripped), which a protocol may score. ``categories`` holds the
    annotation columns (department, discipline, ...) used for per-category breakdowns;
    ``where`` says where the item came from ("val.csv:17") for messages.
    """

    id: str
    question: str
    options: dict[str, str] = field(default_factory=dict)
    answer: tuple[str, ...] = ()
    target: str = ""
    categories: dict[str, str] = field(default_factory=dict)
    where: str = ""
    explanation: str = ""
    # a generation item's label set, the names its output is read against (PromptCBLUE's
    # answer_choices: the entity types of an extraction item); never put to the model as options
    labels: tuple[str, ...] = ()

    @property
    def is_multi_answer(self) -> bool:
        return len(self.answer) > 1

    @property
    def gold(self) -> str:
        """The reference as a string: the answer letters ("ACD") or the target text."""
        return "".join(self.answer) if self.answer else self.target

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "question": self.question,
            "options": self.options,
            "answer": list(self.answer),
            "target": self.target,
            "categories": self.categories,
            **({"explanation": self.explanation} if self.explanation else {}),
            **({"labels": list(self.labels)} if self.labels else {}),
        }


@dataclass(frozen=True)
class BadRow:
    """A row a loader could not turn into an item; loaders yield these instead of raising,
    so that one message can list every bad row of a file (or the rows can be skipped)."""

    line: int
    message: str  # what is wrong and how to fix it, without the "path:line: " prefix
