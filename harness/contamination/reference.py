"""The textbook matcher: a Python set of the items' n-grams and a window slid over each
normalised segment. Slow (a Python step a character) but plain enough to trust; the
vectorised scanner must find exactly what this finds (tests/harness/test_contamination.py)."""

from __future__ import annotations

from typing import Iterable

from .grams import Layout, tokens


class ReferenceScanner:
    def __init__(self, lay: Layout):
        self.n, self.unit, self._layout = lay.n, lay.unit, lay
        self._grams = set(lay.keys())
        self._found: set = set()

    def feed(self, segments: Iterable[str]) -> None:
        n, grams, found, char = self.n, self._grams, self._found, self.unit == "char"
        for segment in segments:
            seq = tokens(segment, self.unit)
            for i in range(len(seq) - n + 1):
                key = seq[i:i + n] if char else tuple(seq[i:i + n])
                if key in grams:
                    found.add(key)

    def result(self) -> bytes:
        """One byte an n-gram position of the layout: 1 if its n-gram was found."""
        found = self._found
        return bytes(key in found for key in self._layout.keys())
