"""Overlap F1 metrics on free text: characters and keyword sets."""

from __future__ import annotations

import re
from collections import Counter
from typing import Optional

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric

from .text import as_text, content_chars

KEYWORD_SPLIT = re.compile(r"[_，,；;、\s]+")


def _f1(overlap: int, n_pred: int, n_ref: int) -> float:
    if n_pred == 0 and n_ref == 0:
        return 1.0
    if overlap == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def char_f1(sample: Sample, prediction) -> Optional[float]:
    """Bag-of-characters F1 (SQuAD token F1 with characters as tokens).

    Both texts are NFKC-normalised and lower-cased; whitespace and Unicode punctuation
    (categories P*) are removed; the overlap is the multiset intersection. Both empty:
    1.0 (SQuAD's convention); one empty: 0.0."""
    pred, ref = Counter(content_chars(as_text(prediction))), Counter(content_chars(sample.target))
    return _f1(sum((pred & ref).values()), sum(pred.values()), sum(ref.values()))


def keywords(text: str, reference: bool = False) -> set[str]:
    """The reference is keywords joined by ``_``; a prediction may also use ，,；;、
    whitespace or newlines. Items are stripped and empties dropped."""
    parts = as_text(text).split("_") if reference else KEYWORD_SPLIT.split(as_text(text))
    return {p.strip() for p in parts if p.strip()}


def keyword_f1(sample: Sample, prediction) -> Optional[float]:
    """F1 of the predicted vs reference keyword sets, exact string match.
    Both empty: 1.0; one empty: 0.0."""
    pred, ref = keywords(as_text(prediction)), keywords(sample.target, reference=True)
    return _f1(len(pred & ref), len(pred), len(ref))


register_metric(Metric(
    "char_f1", char_f1, higher_is_better=True, kinds=("generation",),
    description="bag-of-characters F1 of prediction vs reference (whitespace and "
    "punctuation removed, NFKC, lower-cased)",
))
register_metric(Metric(
    "keyword_f1", keyword_f1, higher_is_better=True, kinds=("generation",),
    description="F1 of predicted vs reference keyword sets (reference joined by '_'; "
    "prediction split on _ ， , ； ; 、 whitespace), exact match",
))
