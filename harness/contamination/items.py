"""Benchmark items as the scanner sees them: a task's name, the item's id and its text parts."""

from __future__ import annotations

from dataclasses import dataclass

from ..samples import Sample


@dataclass(frozen=True)
class Item:
    """One benchmark item's text. ``options`` are ``(letter, text)`` pairs in the
    benchmark's order; ``answer`` is the reference text when it is not one of the options
    (a generation item's target), empty for a multiple-choice item."""

    task: str
    id: str
    question: str
    options: tuple[tuple[str, str], ...] = ()
    answer: str = ""
    where: str = ""  # "val.csv:17", for people reading a flagged item

    @classmethod
    def from_sample(cls, task: str, sample: Sample) -> "Item":
        return cls(task, sample.id, sample.question, tuple(sample.options.items()),
                   "" if sample.options else sample.target, sample.where)

    def parts(self) -> list[str]:
        """The parts one by one: a leak that reorders the options keeps each of them whole."""
        return [p for p in (self.question, *(text for _, text in self.options), self.answer) if p]

    def laid_out(self) -> str:
        """The whole item as a benchmark lays it out (question, each option after its letter,
        the answer): catches items whose parts are each shorter than an n-gram."""
        lines = [self.question, *(f"{letter} {text}" for letter, text in self.options), self.answer]
        return "\n".join(line for line in lines if line)


def items_from_tasks(task_names: list[str] | str) -> list[Item]:
    """The items of these tasks and groups (expanded as ``aimed-eval run`` expands them)."""
    from ..taskregistry import resolve_tasks

    return [Item.from_sample(task.name, s) for task in resolve_tasks(task_names) for s in task.samples()]
