"""Where the items' n-grams are, and how the ones found in a corpus become per-item overlaps.

Both scanners (the plain-Python reference and the vectorised one) take the same
``Layout`` (every item's units, normalised) and return one flag an n-gram position, in the
layout's order: is the n-gram starting there found in the corpus. Everything after that is
here, so the two can differ only in what they find.

An item is seen through two views, and its share is the larger of the two:

- ``parts``: the question, each option and the answer text, each on its own. Reordered
  options leave every part whole, so the share stays high.
- ``text``: the item as laid out (question, ``A`` option, ``B`` option, ..., answer).
  Many exam items have no part as long as an n-gram (``女性生殖腺是`` / ``卵巢``); only
  their whole text can be found.

A unit shorter than ``n`` has no n-grams; an item with none in either view cannot be
scanned (``ngrams == 0``) and is never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

from .items import Item
from .normalise import normalise, words

VIEWS = ("parts", "text")
Seq = Union[str, list[str]]  # a unit: its normalised characters, or its words


def tokens(text: str, unit: str) -> Seq:
    """The unit sequence of ``text``: its normalised characters, or jieba's words of them."""
    normalised = normalise(text)
    return normalised if unit == "char" else words(normalised)


@dataclass
class Layout:
    n: int
    unit: str  # char | word
    units: list[Seq]  # every unit of at least n tokens: item by item, parts view then text view
    views: list[tuple[int, int]]  # per item: how many of its units are in the parts view, the text view

    def windows(self, seq: Seq) -> int:
        return len(seq) - self.n + 1

    def keys(self):
        """Each position's n-gram, in order: a string, or a tuple of n words."""
        n, char = self.n, self.unit == "char"
        for seq in self.units:
            for i in range(len(seq) - n + 1):
                yield seq[i:i + n] if char else tuple(seq[i:i + n])


def layout(items: Sequence[Item], n: int, unit: str) -> Layout:
    units: list[Seq] = []
    views: list[tuple[int, int]] = []
    for item in items:
        counts = []
        for texts in (item.parts(), [item.laid_out()]):
            kept = [seq for seq in (tokens(t, unit) for t in texts) if len(seq) >= n]
            units.extend(kept)
            counts.append(len(kept))
        views.append((counts[0], counts[1]))
    return Layout(n, unit, units, views)


@dataclass(frozen=True)
class Overlap:
    share: float  # found n-gram positions / n-gram positions, of the better view
    longest: int  # longest run of consecutive found positions, as units (run + n - 1)
    ngrams: int  # n-gram positions of the better view
    view: str


def overlaps(lay: Layout, found: bytes) -> list[Overlap]:
    """Each item's overlap, given ``found``: one byte an n-gram position (1: found), in the
    layout's order. Counting and runs are C-level bytes operations."""
    out: list[Overlap] = []
    unit, at = 0, 0
    for views in lay.views:
        best, longest = Overlap(0.0, 0, 0, VIEWS[0]), 0
        for name, count in zip(VIEWS, views):
            total = hits = 0
            for seq in lay.units[unit:unit + count]:
                width = len(seq) - lay.n + 1
                flags = found[at:at + width]
                hits += flags.count(1)
                if hits:
                    longest = max(longest, max(map(len, flags.split(b"\x00"))))
                total += width
                at += width
            unit += count
            if total and (best.ngrams == 0 or hits / total > best.share):
                best = Overlap(hits / total, 0, total, name)
        out.append(Overlap(best.share, longest + lay.n - 1 if longest else 0, best.ngrams, best.view))
    return out
