"""ROUGE-1/2/L F-measures (rouge-chinese) on jieba-segmented words, 0..1.

Both texts are segmented with ``jieba.lcut`` and the words joined by spaces before
``rouge.Rouge().get_scores`` (the rouge-chinese package; it also splits sentences at
。！？ for ROUGE-L, which is summary-level LCS). An empty prediction or reference
scores 0.0 (rouge-chinese itself raises on an empty hypothesis).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Optional

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric

from .text import as_text


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def _rouge():
    from rouge import Rouge

    return Rouge(metrics=["rouge-1", "rouge-2", "rouge-l"], stats=["f"])


def segment(text: str) -> str:
    """jieba words joined by single spaces (whitespace tokens dropped)."""
    return " ".join(w for w in _jieba().lcut(as_text(text)) if w.strip())


@lru_cache(maxsize=4096)
def rouge_f(prediction: str, reference: str) -> tuple[float, float, float]:
    """(rouge-1 F, rouge-2 F, rouge-L F) of two raw texts."""
    hyp, ref = segment(prediction), segment(reference)
    if not hyp or not ref:
        return 0.0, 0.0, 0.0
    s = _rouge().get_scores(hyp, ref)[0]
    return float(s["rouge-1"]["f"]), float(s["rouge-2"]["f"]), float(s["rouge-l"]["f"])


def _make(index: int):
    def fn(sample: Sample, prediction) -> Optional[float]:
        return rouge_f(as_text(prediction), as_text(sample.target))[index]

    return fn


for _i, (_name, _what) in enumerate([
    ("rouge1", "unigram"), ("rouge2", "bigram"), ("rougeL", "longest-common-subsequence"),
]):
    register_metric(Metric(
        _name, _make(_i), higher_is_better=True, kinds=("generation",),
        description=f"ROUGE {_what} F-measure (rouge-chinese) on jieba words, 0..1",
    ))
