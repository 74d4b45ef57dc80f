"""The unit of evaluation data: one benchmark item, whatever its publisher's format."""

from __future__ import annotations

from dataclasses import dataclass, field

LETTERS = "ABCDEFGHIJ"


@dataclass
class Sample:
    """One item. Loaders turn a publisher's rows into these; nothing else reads raw files.

    Multiple choice: ``options`` maps letters to option texts and ``answer`` holds the
    gold letters, sorted (several for a multi-answer item). Generation: ``target`` is
    the reference text and ``options``/``answer`` are empty. ``categories`` holds the
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
        }
