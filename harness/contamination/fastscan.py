"""The vectorised matcher: numpy over a chunk of segments at a time, no Python step a character.

Per chunk of segments (shapes: C = characters in the chunk, K = candidate windows):

1. join the segments with NUL and encode as UTF-16 (UTF-32 when a character is outside
   the BMP): ``a`` (C,) code points;
2. one table lookup normalises and hashes at once: ``CPMAP[a]`` (C,) gives each code
   point's normalised character as a pseudo-random 32-bit value (injective, so equal
   values mean equal characters), 0 for a dropped one, ``SEP`` for the NUL between
   segments; a character that folds to several (``Ⅱ`` -> ``ii``) is expanded, a segment
   holding one that depends on its neighbours (combining marks) is normalised by
   ``normalise`` instead, and a code point met for the first time is folded then; the
   dropped ones are removed;
3. every window's hash is a polynomial in its n values mod 2^32, from one prefix sum
   (the prefix-sum trick: weights B^i before the sum, B^-i after the difference) (C,);
4. a bit map over the hash's top 24 bits drops all but ~3 % of windows, a second over its
   bottom 24 bits all but ~0.4 % (medqa's 500k n-grams); a binary search in the items'
   sorted hashes keeps the (K,) windows whose hash is an item's, and those are compared
   value by value with the item's n-gram (K, n): a hash collision can never count as a
   match, so this finds exactly what the reference finds.

The items' n-grams are numbered here too (``_number``), from the layout's units, without
a Python step an n-gram. Memory: the tables (code points: 9 MB; the items' n-grams and
bit maps: ~25 MB for medqa) plus a few arrays of one chunk, whatever the corpus.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

import numpy as np

from .grams import Layout
from .normalise import fold_codepoint, normalise, words

SEP = np.uint32(0xFFFFFFFC)  # between segments; no item n-gram holds it
MULTI = np.uint32(0xFFFFFFFD)  # folds to several characters: expanded
HARD = np.uint32(0xFFFFFFFE)  # depends on its neighbours: its segment goes through normalise()
UNKNOWN = np.uint32(0xFFFFFFFF)  # not met yet: folded when first seen
_RESERVED = (0, int(SEP), int(MULTI), int(HARD), int(UNKNOWN))
_BASE = np.uint32(0x9E3779B1)  # odd: invertible mod 2^32
_BASE2 = np.uint32(0x85EBCA77)  # a second one, for numbering the items' n-grams
MAP_BITS = 24  # bit maps of 2 MB each; the first passes ~3 % of windows (500k item n-grams)


def _fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: a bijection of uint32 that scatters the bits."""
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def _distinct_values(count: int) -> np.ndarray:
    """``count`` distinct pseudo-random uint32 values, none of them 0 or a marker."""
    for offset in range(1, 1000):
        values = _fmix32(np.arange(offset, offset + count, dtype=np.uint64))
        if not np.isin(values, _RESERVED).any():
            return values
    raise AssertionError("no offset avoids the reserved values")  # cannot happen: 5 values in 2^32


class _CodeTable:
    """VALUE: normalised code point -> value; CPMAP: raw code point -> value, 0 (dropped) or
    a marker; EXPAND: code point -> values of its several folded characters. A code point
    is folded the first time a chunk holds it (a corpus meets a few thousand), so a scan
    starts at once instead of folding all 1.1 million."""

    def __init__(self) -> None:
        self.value = _distinct_values(0x110000)
        self.cpmap = np.full(0x110000, UNKNOWN, dtype=np.uint32)
        self.cpmap[0] = SEP  # the joiner; a segment holding a real NUL is normalised on its own
        self.expand: dict[int, np.ndarray] = {}

    def learn(self, codes: np.ndarray) -> None:
        for cp in np.unique(codes).tolist():
            folded = fold_codepoint(cp)
            if folded is None:
                self.cpmap[cp] = HARD
            elif len(folded) == 1:
                self.cpmap[cp] = self.value[ord(folded)]
            elif folded:
                self.cpmap[cp] = MULTI
                self.expand[cp] = self.value[[ord(c) for c in folded]]
            else:
                self.cpmap[cp] = 0


@lru_cache(maxsize=1)
def _code_table() -> _CodeTable:
    return _CodeTable()


def _bitmap(keys: np.ndarray) -> np.ndarray:
    bits = np.zeros(1 << MAP_BITS, dtype=np.bool_)
    bits[keys] = True
    return np.packbits(bits, bitorder="little")  # 2 MB: stays in a core's cache


def _test(bitmap: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """bitmap's bit at each key (uint32 keys below 2^MAP_BITS), as a bool array."""
    byte = np.take(bitmap, keys >> np.uint32(3))
    return (byte >> (keys & np.uint32(7)).astype(np.uint8)) & np.uint8(1) != 0


def _powers_of(base: np.uint32, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(B^i, B^-i) mod 2^32 for i < length; B odd, so invertible."""
    inverse = np.uint32(pow(int(base), -1, 1 << 32))
    with np.errstate(over="ignore"):
        return (np.cumprod(np.full(length, base, dtype=np.uint32), dtype=np.uint32) * inverse,
                np.cumprod(np.full(length, inverse, dtype=np.uint32), dtype=np.uint32) * base)


def _poly(values: np.ndarray, starts: np.ndarray, n: int, base: np.uint32) -> np.ndarray:
    """The polynomial hash of the n values from each of ``starts`` (prefix-sum trick)."""
    power, inverse = _powers_of(base, len(values) + 1)
    prefix = np.zeros(len(values) + 1, dtype=np.uint32)
    np.cumsum(values * power[:len(values)], dtype=np.uint32, out=prefix[1:])
    return (prefix[starts + n] - prefix[starts]) * inverse[starts]


def _number(values: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Number the distinct n-grams starting at ``starts`` in ``values``: (P,) the number of
    each position's, (G, n) each distinct one's values. Positions are grouped by a 64-bit
    hash (two 32-bit polynomials), then every position is compared with its group's first,
    so numbering is exact; a 64-bit collision (never seen) falls back to a dict."""
    offsets = np.arange(n)
    if not len(starts):
        return np.zeros(0, dtype=np.int64), np.zeros((0, n), dtype=np.uint32)
    key = (_poly(values, starts, n, _BASE2).astype(np.uint64) << np.uint64(32)) | _poly(values, starts, n, _BASE)
    _, first, gram_of = np.unique(key, return_index=True, return_inverse=True)
    gram_of = gram_of.reshape(-1)
    step = 1 << 16  # compared a slice at a time: (step, n) arrays, not (P, n)
    for i in range(0, len(starts), step):
        rows = values[starts[i:i + step, None] + offsets]
        if not (rows == values[starts[first[gram_of[i:i + step]], None] + offsets]).all():
            index: dict[bytes, int] = {}
            gram_of = np.array([index.setdefault(values[s:s + n].tobytes(), len(index)) for s in starts.tolist()])
            first = np.unique(gram_of, return_index=True)[1]
            break
    return gram_of, values[starts[first, None] + offsets]


class FastScanner:
    def __init__(self, lay: Layout):
        self.n, self.unit = lay.n, lay.unit
        self._powers(self.n)
        if lay.unit == "char":
            self._codes = _code_table()
            self._value, self._cpmap = self._codes.value, self._codes.cpmap
            text = "\x00".join(lay.units)  # units are normalised: no NUL of their own
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            values = self._value[codes]
            values[codes == 0] = SEP
        else:
            vocab = sorted({w for seq in lay.units for w in seq})
            self._words = dict(zip(vocab, _distinct_values(len(vocab)).tolist()))
            get = self._words.__getitem__
            values = np.array([v for seq in lay.units for v in (*map(get, seq), SEP)], dtype=np.uint32)
        # every n-gram position of the layout: where its window starts in ``values`` (P,)
        lengths = np.fromiter(map(len, lay.units), dtype=np.int64, count=len(lay.units))
        widths = lengths - self.n + 1
        unit_at = np.cumsum(lengths + 1) - (lengths + 1)  # where each unit starts in ``values``
        starts = np.repeat(unit_at - (np.cumsum(widths) - widths), widths) + np.arange(widths.sum())
        self._gram_of, grams = _number(values, starts, self.n)  # (P,) gram id a position; (G, n)
        self._grams = grams
        hashes = (grams * self._pow[:self.n]).sum(axis=1, dtype=np.uint32)  # (G,), as _windows hashes
        order = np.argsort(hashes, kind="stable")
        # distinct hashes, sorted; each one's grams are order[start:start + count] (several only
        # for a 32-bit collision between two grams: every one of them is checked)
        self._hashes, self._start, self._count = np.unique(hashes[order], return_index=True, return_counts=True)
        self._order = order
        # two bit maps of the items' hashes, over their top and their bottom MAP_BITS bits
        self._high = _bitmap(self._hashes >> np.uint32(32 - MAP_BITS))
        self._low = _bitmap(self._hashes & np.uint32((1 << MAP_BITS) - 1))
        self._offsets = np.arange(self.n)
        self.found = np.zeros(len(grams), dtype=np.bool_)

    def _powers(self, length: int) -> None:
        """B^i and B^-i mod 2^32 for i < length, grown as needed."""
        if length > len(getattr(self, "_pow", ())):
            self._pow, self._inv = _powers_of(_BASE, max(length, 1 << 16))

    def result(self) -> bytes:
        """One byte an n-gram position of the layout: 1 if its n-gram was found."""
        return self.found[self._gram_of].astype(np.uint8).tobytes()

    def feed(self, segments: list[str]) -> None:
        if not segments:
            return
        if self.unit == "word":
            self._windows(self._word_values(segments))
            return
        text = "\x00".join(segments)
        odd: list[str] = []
        if text.count("\x00") != len(segments) - 1:  # a real NUL: those segments go the slow way
            odd = [s for s in segments if "\x00" in s]
            segments = [s for s in segments if "\x00" not in s]
            text = "\x00".join(segments)
        raw = text.encode("utf-16-le", "surrogatepass")
        if len(raw) == 2 * len(text):  # no character outside the BMP: one code unit each
            codes = np.frombuffer(raw, dtype=np.uint16)
        else:
            codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        values = self._cpmap[codes]  # (C,)
        if len(values) and values.max() >= MULTI:
            values, more = self._special(values, codes, segments)
            odd.extend(more)
        values = values[values != 0]
        if odd:
            values = np.concatenate([values] + [self._slow(s) for s in odd])
        self._windows(values)

    def _special(self, values: np.ndarray, codes: np.ndarray, segments: list[str]):
        """Fold code points met for the first time; expand multi-character folds; take out
        the segments that need ``normalise`` (their characters set to 0, to be dropped: the
        NULs around them stay, so nothing joins across them)."""
        at = np.flatnonzero(values >= MULTI)  # the few marked positions
        unknown = at[values[at] == UNKNOWN]
        if len(unknown):
            self._codes.learn(codes[unknown])
            values[unknown] = self._cpmap[codes[unknown]]
        more: list[str] = []
        hard = at[values[at] == HARD]
        if len(hard):
            seps = np.flatnonzero(values == SEP)  # segment i lies between the (i-1)-th and i-th NUL
            for i in np.unique(np.searchsorted(seps, hard)).tolist():
                start = seps[i - 1] + 1 if i else 0
                values[start:seps[i] if i < len(seps) else len(values)] = 0
                more.append(segments[i])
        multi = at[values[at] == MULTI]
        if len(multi):
            folds = [self._codes.expand[cp] for cp in codes[multi].tolist()]
            values[multi] = [f[0] for f in folds]
            extra = np.repeat(multi + 1, [len(f) - 1 for f in folds])
            values = np.insert(values, extra, np.concatenate([f[1:] for f in folds]))
        return values, more

    def _slow(self, segment: str) -> np.ndarray:
        text = normalise(segment)
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        return np.concatenate([[SEP], self._value[codes]]).astype(np.uint32)

    def _word_values(self, segments: Iterable[str]) -> np.ndarray:
        get, out = self._words.get, []
        for segment in segments:
            out.extend(get(w, SEP) for w in words(normalise(segment)))  # a word of no item breaks windows
            out.append(SEP)
        return np.array(out, dtype=np.uint32)

    def _windows(self, values: np.ndarray) -> None:
        """Mark the items' n-grams found among the windows of ``values`` (L,)."""
        n, size = self.n, len(values)
        if size < n or not len(self._hashes):
            return
        self._powers(size + 1)
        # polynomial hash: window i is sum_k values[i+k] B^k = (P[i+n] - P[i]) B^-i, where
        # P[j] = sum_{t<j} values[t] B^t; all mod 2^32 (uint32 arithmetic wraps)
        prefix = np.zeros(size + 1, dtype=np.uint32)
        np.cumsum(values * self._pow[:size], dtype=np.uint32, out=prefix[1:])
        hashes = prefix[n:] - prefix[:-n]
        hashes *= self._inv[:size - n + 1]  # (W,) with W = L - n + 1
        cand = np.flatnonzero(_test(self._high, hashes >> np.uint32(32 - MAP_BITS)))
        hashes = hashes[cand]
        second = _test(self._low, hashes & np.uint32((1 << MAP_BITS) - 1))
        cand, hashes = cand[second], hashes[second]
        if not len(cand):
            return
        at = np.minimum(np.searchsorted(self._hashes, hashes), len(self._hashes) - 1)
        hit = self._hashes[at] == hashes
        cand, at = cand[hit], at[hit]
        # each candidate against every gram of its hash (nearly always one): (K,) -> (K', n)
        count = self._count[at]
        if len(count) and count.max() > 1:
            cand, at = np.repeat(cand, count), np.repeat(at, count)
            rank = np.arange(len(cand)) - np.repeat(np.cumsum(count) - count, count)
            gid = self._order[self._start[at] + rank]
        else:
            gid = self._order[self._start[at]]
        todo = ~self.found[gid]  # a gram found once is found
        cand, gid = cand[todo], gid[todo]
        if len(cand):
            same = (values[cand[:, None] + self._offsets] == self._grams[gid]).all(axis=1)  # (K', n) -> (K',)
            self.found[gid[same]] = True
