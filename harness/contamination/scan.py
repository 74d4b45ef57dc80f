"""Scanning training files for benchmark items: the entry points.

``scan_items(items, files)`` -> ``ContaminationReport``: per item, the share of its
n-grams found in the files, the longest matched span, and whether it is flagged
(share >= threshold). ``scan_tasks(["medqa"], files)`` does the same for tasks and groups.
The defaults come from measurements on CMExam planted into the real training files
(docs/contamination.md, benchmarks/contamination_calibrate.py).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from ..errors import UserError
from .corpus import TrainingFile, check_files, read_chunks
from .grams import layout, overlaps
from .items import Item, items_from_tasks
from .normalise import UNITS
from .report import ContaminationReport, ItemOverlap

DEFAULT_N = {"char": 8, "word": 5}
MIN_N = 5
DEFAULT_THRESHOLD = 0.7
ENGINES = ("fast", "reference")
PREVIEW_CHARS = 40

Files = Sequence[Union[str, Path, TrainingFile]]


def check_settings(n: Optional[int], unit: str, threshold: float) -> int:
    """The n-gram length to use; a UserError for settings outside their range."""
    if unit not in UNITS:
        raise UserError(f"--unit {unit}: give one of {', '.join(UNITS)}")
    n = DEFAULT_N[unit] if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or n < MIN_N:
        raise UserError(f"--ngram {n}: give a whole number of at least {MIN_N} (shorter n-grams match "
                        "common phrases, not leaked items)")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise UserError(f"--threshold {threshold}: give a share between 0 and 1 (default {DEFAULT_THRESHOLD})")
    return n


def scan_items(items: Sequence[Item], files: Files, n: Optional[int] = None, unit: str = "char",
               threshold: float = DEFAULT_THRESHOLD, *, engine: str = "fast",
               progress: Optional[Callable[[int], None]] = None) -> ContaminationReport:
    """Scan ``files`` for ``items``. ``n`` defaults to ``DEFAULT_N[unit]``; ``engine`` is
    ``fast`` (vectorised) or ``reference`` (the plain-Python set of n-grams: same result,
    about ten times slower); ``progress`` is called with the bytes read since its last call."""
    n = check_settings(n, unit, threshold)
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {ENGINES}")
    if all(isinstance(f, TrainingFile) for f in files):
        checked = list(files)  # checked already (the CLI checks before loading the tasks)
    else:
        checked = check_files([f.path if isinstance(f, TrainingFile) else Path(f) for f in files])
    started = time.perf_counter()
    lay = layout(items, n, unit)
    scanner = _scanner(lay, engine)
    # Reading JSON makes millions of short-lived dicts and lists, none in a cycle: the
    # cyclic collector's passes over them cost 10-15 % of a scan and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for tf in checked:
            for chunk in read_chunks(tf, progress):
                scanner.feed(chunk)
    finally:
        if collecting:
            gc.enable()
    out = []
    for item, o in zip(items, overlaps(lay, scanner.result())):
        out.append(ItemOverlap(item.task, item.id, round(o.share, 6), o.longest, o.ngrams,
                               o.ngrams > 0 and o.share >= threshold, o.view, item.where,
                               item.question[:PREVIEW_CHARS]))
    return ContaminationReport(out, n, unit, float(threshold), [str(tf.path) for tf in checked],
                               sum(tf.size for tf in checked), time.perf_counter() - started)


def scan_tasks(task_names: Union[list[str], str], files: Files, n: Optional[int] = None, unit: str = "char",
               threshold: float = DEFAULT_THRESHOLD, **kwargs) -> ContaminationReport:
    """``scan_items`` over the items of these tasks and groups (``["medqa"]``)."""
    check_settings(n, unit, threshold)
    return scan_items(items_from_tasks(task_names), files, n, unit, threshold, **kwargs)


def _scanner(lay, engine: str):
    if engine == "reference":
        from .reference import ReferenceScanner

        return ReferenceScanner(lay)
    from .fastscan import FastScanner  # numpy: imported only when scanning

    return FastScanner(lay)
