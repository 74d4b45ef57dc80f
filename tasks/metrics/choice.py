"""Multiple-choice metrics. A prediction is a tuple of letters (empty: refused / none found)."""

from __future__ import annotations

from typing import Optional

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric


def _letters(prediction) -> set[str]:
    return set(prediction or ())


def acc(sample: Sample, prediction) -> Optional[float]:
    """1.0 when the predicted letter set equals the gold set exactly, else 0.0.

    None for items without gold letters (generation items)."""
    if not sample.answer:
        return None
    return 1.0 if _letters(prediction) == set(sample.answer) else 0.0


def set_f1(sample: Sample, prediction) -> Optional[float]:
    """F1 of predicted vs gold letter sets, for multi-answer items only.

    With P the predicted and G the gold set: 2|P∩G| / (|P| + |G|); 0.0 when P is empty.
    None for single-answer items (it would equal ``acc`` there for one predicted letter)."""
    if not sample.is_multi_answer:
        return None
    pred, gold = _letters(prediction), set(sample.answer)
    if not pred:
        return 0.0
    return 2 * len(pred & gold) / (len(pred) + len(gold))


register_metric(Metric(
    "acc", acc, higher_is_better=True, kinds=("multiple_choice",),
    description="exact answer-set accuracy: the predicted letters equal the gold letters",
))
register_metric(Metric(
    "set_f1", set_f1, higher_is_better=True, kinds=("multiple_choice",),
    description="multi-answer items only: 2|P∩G|/(|P|+|G|) of predicted vs gold letters "
    "(partial credit); 0 for an empty prediction",
))
