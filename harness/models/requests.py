"""What the harness asks a backend for; no torch here, so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class LoglikelihoodRequest:
    context: str
    continuations: tuple[str, ...]


@dataclass(frozen=True)
class GenerateRequest:
    context: str
    max_new_tokens: int
    stop: tuple[str, ...]


# One scored continuation: (sum of log-probabilities, number of tokens, greedy?)
ContinuationScore = tuple[float, int, bool]


def cut_at_stop(text: str, stops: Iterable[str]) -> str:
    """``text`` up to the first stop string."""
    cut = len(text)
    for s in stops:
        if s and (k := text.find(s)) != -1:
            cut = min(cut, k)
    return text[:cut]
