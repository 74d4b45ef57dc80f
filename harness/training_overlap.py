"""A run's items checked against the checkpoint's training data (``--contamination_data``).

The scan (``harness/contamination``) runs once before the model loads, so a bad data file
fails first; its per-item overlap goes into each record (``runner.run_task``) and from
there into the clean-subset metrics (``scoring/clean.py``). A pipeline scores every
checkpoint of a stage against the same files: the scan of one set of files and items is
kept for the process, keyed by the files' sizes and times and the tasks' data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .taskregistry import Task

Overlaps = dict[str, dict[str, dict]]  # task -> item id -> {"share", "longest", "flagged"}

_SCANS: dict[tuple, tuple[Overlaps, dict]] = {}


def check_training_data(tasks: list[Task], files: tuple[str, ...], ngram: Optional[int],
                        threshold: Optional[float], progress: bool = True,
                        flag: str = "--contamination_data") -> tuple[Optional[Overlaps], dict]:
    """(task -> item id -> overlap, the summary results.json keeps); (None, {}) without files.
    ``flag``: how errors name the files (the pipeline names its stage's train_files)."""
    if not files:
        return None, {}
    from .contamination import DEFAULT_THRESHOLD, Item, check_files, scan_items
    from .errors import UserError

    try:
        checked = check_files([Path(f) for f in files])
    except UserError as exc:  # the scanner's own command calls them --data
        raise UserError(exc.message.replace("--data", flag, 1)) from None
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    key = (tuple((str(tf.path), *_stamp(tf.path)) for tf in checked), ngram, threshold,
           tuple((t.name, t.data_hash) for t in tasks))
    if key not in _SCANS:
        items = [Item.from_sample(t.name, s) for t in tasks for s in t.samples()]
        report = scan_items(items, checked, ngram, "char", threshold, progress=_bar(checked, progress))
        overlaps: Overlaps = {}
        for o in report.items:
            overlaps.setdefault(o.task, {})[o.id] = o.to_record()
        summary = {"files": report.files, "ngram": report.n, "unit": report.unit, "threshold": report.threshold,
                   "flagged": {t: c.flagged for t, c in report.counts().items()},
                   "checked": {t: c.items for t, c in report.counts().items()}}
        _SCANS[key] = (overlaps, summary)
    return _SCANS[key]


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _bar(checked: list, progress: bool):
    """A tqdm bar over the bytes read (None when progress is off); shown only once a scan has
    taken two seconds, so a small file's check prints nothing but its result."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(tf.size for tf in checked), desc="training data", unit="B", unit_scale=True,
               dynamic_ncols=True, leave=False, delay=2.0)
    return bar.update
