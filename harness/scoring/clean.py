"""Metrics on the clean subset: the items the checkpoint's training data does not contain.

A run scored with ``--contamination_data`` (or by the pipeline, with the stage's training
files) carries each item's overlap with that data in its record (``contamination``:
``share``, ``longest``, ``flagged``; see ``harness/contamination``). Every per-item metric
``m`` then gets ``m_clean``: its value on an unflagged item, none on a flagged one, so the
task's ``m_clean`` is ``m`` over the clean subset, with its own standard error, and compare
pairs it on the items clean in both runs. ``contaminated`` is the share of flagged items
(lower is better). A published protocol's metrics are computed over the whole set only.
"""

from __future__ import annotations

import dataclasses

from .metrics import METRICS, Metric, register_metric

CONTAMINATED = "contaminated"
SUFFIX = "_clean"

register_metric(Metric(CONTAMINATED, lambda sample, prediction: None, higher_is_better=False, kinds=(),
                       description="--contamination_data: share of items found in the training data"))


def clean_name(metric: str) -> str:
    """``acc`` -> ``acc_clean``, registered (on first use) with ``acc``'s direction and aggregate."""
    name = metric + SUFFIX
    if name not in METRICS:
        base = METRICS.get(metric)
        register_metric(dataclasses.replace(base, name=name, kinds=(),
                                            description=f"{metric} on the items the training data does not contain"))
    return name


def is_checked(records: list[dict]) -> bool:
    """Whether the records were checked against training data."""
    return bool(records) and all("contamination" in r for r in records)


def metric_names(names: list[str]) -> list[str]:
    """The clean subset's metrics of a task that reports ``names``."""
    return [CONTAMINATED] + [clean_name(n) for n in names if not METRICS.get(n).protocol]


def fill(record: dict, names: list[str]) -> None:
    """``record``'s clean-subset values of the metrics ``names`` (already filled in)."""
    flagged = bool(record["contamination"]["flagged"])
    record[CONTAMINATED] = float(flagged)
    for n in names:
        if not METRICS.get(n).protocol:
            record[clean_name(n)] = None if flagged else record.get(n)
