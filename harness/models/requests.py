"""What the harness asks a backend for; no torch here, so the CLI starts fast."""

from __future__ import annotations

from dataclasses import dataclass


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
