"""Corpus BLEU-4 on characters, 0..1 (Papineni et al. 2002; sacrebleu's corpus_bleu
with smooth_method='none' on pre-split characters gives the same number x100).

Each character is a token, whitespace dropped. The per-sample function returns the
sufficient statistics ``(m1, m2, m3, m4, t1, t2, t3, t4, hyp_len, ref_len)`` — clipped
n-gram matches, hypothesis n-gram totals, lengths — and the aggregate sums them over
the corpus: BLEU = BP * exp(mean_n log(M_n / T_n)), BP = min(1, exp(1 - R/H)).
No smoothing: a corpus with no matching n-gram of some order scores 0. The standard
error is the seeded bootstrap of the corpus score (the Metric default for a custom
aggregate).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional, Sequence

from aimed.harness.samples import Sample
from aimed.harness.scoring.metrics import Metric, register_metric

from .text import as_text

MAX_N = 4


def chars(text: str) -> list[str]:
    return [c for c in as_text(text) if not c.isspace()]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu_stats(prediction: str, reference: str) -> tuple[int, ...]:
    hyp, ref = chars(prediction), chars(reference)
    matches, totals = [], []
    for n in range(1, MAX_N + 1):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        matches.append(sum(min(c, r[g]) for g, c in h.items()))
        totals.append(max(len(hyp) - n + 1, 0))
    return (*matches, *totals, len(hyp), len(ref))


def corpus_bleu(stats: Sequence[Sequence[float]]) -> float:
    """Corpus BLEU-4 (0..1) from summed per-sample statistics."""
    if not stats:
        return float("nan")
    s = [sum(col) for col in zip(*stats)]
    matches, totals, hyp_len, ref_len = s[:MAX_N], s[MAX_N:2 * MAX_N], s[-2], s[-1]
    if hyp_len == 0 or any(m == 0 for m in matches) or any(t == 0 for t in totals):
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals)) / MAX_N
    bp = 1.0 if hyp_len >= ref_len else math.exp(1 - ref_len / hyp_len)
    return bp * math.exp(log_p)


def bleu4(sample: Sample, prediction) -> Optional[tuple[int, ...]]:
    return bleu_stats(as_text(prediction), as_text(sample.target))


register_metric(Metric(
    "bleu4", bleu4, higher_is_better=True, aggregate=corpus_bleu, kinds=("generation",),
    description="corpus BLEU-4 on characters (uniform weights, brevity penalty, no "
    "smoothing), 0..1; stderr by bootstrap",
))
