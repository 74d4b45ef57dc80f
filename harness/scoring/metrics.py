"""Metrics as declared objects: a per-sample function, an aggregation, a standard error.

A metric's ``sample_fn(sample, prediction)`` returns a number for one item, or ``None``
where the metric does not apply to it (``set_f1`` on a single-answer item). Corpus
metrics (BLEU) return sufficient statistics instead and bring their own ``aggregate``.
Every metric has a standard error: the analytic one of a mean, or a seeded bootstrap.

``no_answer`` is the harness's own: the share of generate-mode multiple-choice items with
no readable answer (a refusal, a hedge, junk). Every such task reports it, named or not.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from ..registry import Registry
from ..samples import Sample

BOOTSTRAP_ITERS = 200


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def mean_stderr(values: Sequence[float]) -> float:
    """Standard error of the mean, sample standard deviation (ddof=1), as lm-eval does."""
    n = len(values)
    if n < 2:
        return float("nan")
    mu = mean(values)
    var = sum((v - mu) ** 2 for v in values) / (n - 1)
    return math.sqrt(var / n)


def bootstrap_stderr(aggregate: Callable[[list], float], values: Sequence[Any], seed: int = 1234) -> float:
    """Standard deviation of ``aggregate`` over seeded resamples of the items."""
    n = len(values)
    if n < 2:
        return float("nan")
    rng = random.Random(seed)
    stats = []
    for _ in range(BOOTSTRAP_ITERS):
        stats.append(aggregate([values[rng.randrange(n)] for _ in range(n)]))
    return mean_stderr(stats) * math.sqrt(len(stats))  # std of the bootstrap distribution


@dataclass(frozen=True)
class Metric:
    name: str
    sample_fn: Callable[[Sample, Any], Optional[Any]]
    higher_is_better: bool = True
    aggregate: Callable[[list], float] = mean
    # None: the analytic stderr of a mean when aggregate is the mean, else a bootstrap.
    stderr_fn: Optional[Callable[[list], float]] = None
    description: str = ""
    # the task kinds it can score: `validate` refuses e.g. rougeL on a multiple-choice task
    kinds: tuple[str, ...] = ("multiple_choice", "generation")
    protocol: Optional[str] = None  # set for the metrics a published protocol reports

    def stderr(self, values: list) -> float:
        if self.stderr_fn is not None:
            return self.stderr_fn(values)
        if self.aggregate is mean:
            return mean_stderr(values)
        return bootstrap_stderr(self.aggregate, values)

    def summarise(self, values: list) -> tuple[float, float, int]:
        """(value, stderr, n) over the items the metric applies to."""
        kept = [v for v in values if v is not None]
        if not kept:
            return float("nan"), float("nan"), 0
        return self.aggregate(kept), self.stderr(kept), len(kept)


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric) -> Metric:
    return METRICS.add(metric.name, metric)


def no_answer(sample: Sample, prediction) -> Optional[float]:
    """1.0 when no option could be read from the output (an empty prediction), else 0.0."""
    if not sample.options:
        return None
    return 0.0 if prediction else 1.0


NO_ANSWER = register_metric(Metric(
    "no_answer", no_answer, higher_is_better=False, kinds=("multiple_choice",),
    description="generate mode: share of items with no readable answer (refusals, hedges, junk)",
))
