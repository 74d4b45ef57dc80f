"""Text normalisation for n-gram matching, the same on the benchmark side and the corpus side.

A leaked exam question rarely reaches training data byte for byte: full-width punctuation
turns half-width, spaces come and go, ``Ａ`` becomes ``A``. So both sides are folded to the
characters that carry the content:

1. Unicode NFKC (``unicodedata``): compatibility forms fold to their plain form (``，`` ->
   ``,``, ``Ａ`` -> ``A``, ``Ⅱ`` -> ``II``, ``℃`` -> ``°C``);
2. ASCII letters are lowercased (``DNA`` and ``dna`` are the same leak);
3. every character of the Unicode general categories P* (punctuation), Z* (separators:
   spaces, line and paragraph separators), S* (symbols: ``+ < = > ° ~ ¥``) and C* (control,
   format such as zero-width spaces and BOMs, surrogates, private use, unassigned) is
   dropped. Letters (L*), marks (M*) and numbers (N*) stay.

Chinese is not split into words by spaces, so whitespace tokenisation (lm-eval's
decontamination) sees one "word" a sentence; the units here are characters (the default)
or jieba words (``unit="word"``), never whitespace tokens.

``fold_codepoint`` says what one code point normalises to on its own, for the vectorised
scanner's lookup table: most characters (all of CJK, ASCII, full-width forms, ``℃``,
``Ⅱ``) normalise the same alone as in any context, and the few that do not (combining
marks, Hangul jamo and syllables, characters that compose with a neighbour) make their
whole segment go through ``normalise``.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Optional

UNITS = ("char", "word")
DROPPED_CATEGORIES = ("P", "Z", "S", "C")  # major classes; see the module's docstring

# Hangul: a leading and a vowel jamo compose into a syllable, a syllable and a trailing jamo
# too (algorithmically, so they are missing from the decomposition table read below).
_HANGUL_SECOND = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))


class _Filter(dict):
    """``str.translate`` table of the per-character step after NFKC (lowercase ASCII, drop
    P/Z/S/C), filled as characters are met: a dict lookup a character, no Python call."""

    def __missing__(self, cp: int) -> Optional[str]:
        ch = chr(cp)
        value = None if unicodedata.category(ch)[0] in DROPPED_CATEGORIES else (
            ch.lower() if "A" <= ch <= "Z" else ch)
        self[cp] = value
        return value


_FILTER = _Filter()


def normalise(text: str) -> str:
    """``text`` as the matcher sees it: NFKC, ASCII lowercased, P/Z/S/C characters dropped."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text.translate(_FILTER)


@lru_cache(maxsize=1)
def _second_elements() -> frozenset[int]:
    """Code points that can be the second of a canonical composition pair (``e`` + U+0301
    -> ``é`` has U+0301; Hangul vowel and trailing jamo; Indic vowel signs of class 0): a
    character next to one of these may compose with it, so it cannot be folded alone."""
    second = set(_HANGUL_SECOND)
    for cp in range(0x30000):  # no canonical decomposition lies beyond plane 2 (Unicode 15)
        dec = unicodedata.decomposition(chr(cp))
        if dec and not dec.startswith("<"):
            parts = dec.split()
            if len(parts) == 2:
                a, b = (chr(int(p, 16)) for p in parts)
                if unicodedata.normalize("NFC", a + b) == chr(cp):
                    second.add(ord(b))
    return frozenset(second)


def fold_codepoint(cp: int) -> Optional[str]:
    """What ``cp`` normalises to wherever it stands ("" when dropped, possibly several
    characters: ``Ⅱ`` -> ``ii``), or None when it may compose or reorder with a neighbour.

    A character is context-free when its compatibility decomposition (NFKD) holds only
    characters of combining class 0 that are never the second of a composition pair:
    nothing then composes or reorders, NFKC of a string of such characters is the
    concatenation of their NFKD forms, and the per-character step is applied to each.
    """
    ch = chr(cp)
    if unicodedata.category(ch) in ("Cn", "Co", "Cs"):  # unassigned, private, surrogate: dropped alone
        return ""
    second = _second_elements()
    decomposed = unicodedata.normalize("NFKD", ch)
    if any(unicodedata.combining(c) or ord(c) in second for c in decomposed):
        return None
    return decomposed.translate(_FILTER)


def words(normalised: str) -> list[str]:
    """jieba's words of an already normalised text (the ``word`` unit). Segmenting the
    normalised text, without its punctuation, keeps the words the same whether a leak kept
    the punctuation or not."""
    return _jieba().lcut(normalised) if normalised else []


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict" chatter on stderr
    jieba.initialize()
    return jieba
