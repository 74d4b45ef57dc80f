"""How well an LLM judge agrees with human graders: rank correlations, a weighted kappa,
and paired bootstrap intervals (numpy only, torch-free).

* ``spearman``: Spearman's rho, the Pearson correlation of average ranks (ties share the
  mean of the ranks they span), as ``scipy.stats.spearmanr``.
* ``kendall_tau_b``: Kendall's tau-b, which corrects for ties in either list, as
  ``scipy.stats.kendalltau`` (its default variant).
* ``quadratic_weighted_kappa``: Cohen's kappa with quadratic weights on an integer scale,
  as ``sklearn.metrics.cohen_kappa_score(weights="quadratic", labels=scale)``.
* ``bootstrap_interval``: percentile interval of any of these over resampled items.

A statistic that is undefined (fewer than two items, a constant list, no spread to
agree on) is ``nan``, never an exception: a calibration set where every answer got a 5
is a finding to report, not a crash.

Judge scores and reference metrics live on different scales, so a judge is compared with
a reference metric (ROUGE, char F1) by rank correlation only; the kappa, which needs
both raters on one scale, is reported for judge vs human alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

__all__ = ["Agreement", "agreement_table", "bootstrap_interval", "kendall_tau_b", "quadratic_weighted_kappa",
           "spearman"]

NAN = float("nan")
Statistic = Callable[[np.ndarray, np.ndarray], float]


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired lists of one dimension needed, got shapes {a.shape} and {b.shape}")
    return a, b


def _average_ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given the mean of the ranks they span (scipy's ``rankdata``)."""
    order = np.argsort(v, kind="mergesort")
    sorted_v = v[order]
    # Each run of equal values [start, end) gets rank (start + end + 1) / 2.
    new_run = np.r_[True, sorted_v[1:] != sorted_v[:-1]]
    starts = np.flatnonzero(new_run)
    ends = np.r_[starts[1:], len(v)]
    ranks = np.empty(len(v))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of paired values; ``nan`` for < 2 items or a constant list."""
    a, b = _pair(x, y)
    if len(a) < 2:
        return NAN
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denom if denom > 0 else NAN


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y).

    Counted over all pairs at once (n x n sign matrices, O(n^2) memory: fine for the few
    hundred items a human calibration set holds). ``nan`` for < 2 items or a constant list.
    """
    a, b = _pair(x, y)
    if len(a) < 2:
        return NAN
    sa = np.sign(a[:, None] - a[None, :])
    sb = np.sign(b[:, None] - b[None, :])
    # Every unordered pair is counted twice (i, j and j, i): the factor cancels in the ratio.
    denom = math.sqrt(float(np.abs(sa).sum()) * float(np.abs(sb).sum()))
    return float((sa * sb).sum()) / denom if denom > 0 else NAN


def _to_scale(v: np.ndarray, low: int, high: int, which: str) -> np.ndarray:
    """Whole ratings: halves round up (3.5 -> 4), not to even as Python's ``round`` does."""
    r = np.floor(v + 0.5).astype(int)
    outside = (r < low) | (r > high)
    if outside.any():
        raise ValueError(f"{which} rating {v[outside][0]:g} is outside the scale {low}..{high}")
    return r - low


def quadratic_weighted_kappa(a: Sequence[float], b: Sequence[float], low: int, high: int) -> float:
    """Cohen's kappa with quadratic weights, for two raters on the integer scale low..high.

    Ratings are rounded to whole points first, halves up (a judge's 3.5, the mean of its
    criteria, counts as 4), because kappa compares categories. Every point of the scale is
    a category whether used or not, so a 1-vs-5 disagreement weighs 16 times a 1-vs-2 one
    on any data. ``nan`` when there are no items or no disagreement could be expected by
    chance (both raters used one and the same point); a rating outside the scale after
    rounding is a ``ValueError``.
    """
    x, y = _pair(a, b)
    if high <= low:
        raise ValueError(f"scale {low}..{high}: high must be above low")
    if len(x) == 0:
        return NAN
    k = high - low + 1
    i, j = _to_scale(x, low, high, "first"), _to_scale(y, low, high, "second")
    observed = np.zeros((k, k))
    np.add.at(observed, (i, j), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(x)
    points = np.arange(k)
    weights = (points[:, None] - points[None, :]) ** 2.0
    chance = float((weights * expected).sum())
    return 1.0 - float((weights * observed).sum()) / chance if chance > 0 else NAN


def bootstrap_interval(stat: Statistic, x: Sequence[float], y: Sequence[float], n_boot: int = 2000,
                       seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile (1 - alpha) interval of ``stat(x, y)`` over ``n_boot`` resamples of items.

    Resampling is paired (an item's two scores travel together) and seeded, so the same
    inputs and seed give the same interval. A resample on which the statistic is
    undefined (``nan``: say all its items tied) is skipped; if every one is, or there are
    no items, the interval is ``(nan, nan)``. Percentiles interpolate linearly, as numpy's.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot}: at least 1 resample needed")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}: give a level between 0 and 1")
    a, b = _pair(x, y)
    n = len(a)
    if n == 0:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = stat(a[idx], b[idx])
        if not math.isnan(v):
            values.append(v)
    if not values:
        return NAN, NAN
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Agreement:
    """One row of an agreement table.

    ``name``: the statistic (``spearman``, ``kendall_tau_b``, ``qwk``); ``against``: the
    two score lists compared, first vs second (``judge vs human``, ``judge vs rougeL``,
    ``human vs rougeL``); ``value`` the statistic on all ``n`` items; ``low``..``high`` its
    bootstrap interval. ``nan`` where undefined.
    """

    name: str
    against: str
    value: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict:
        """JSON-ready: ``nan`` becomes ``None`` (JSON has no NaN)."""
        def num(v: float) -> Optional[float]:
            return None if math.isnan(v) else v

        return {"name": self.name, "against": self.against, "value": num(self.value), "low": num(self.low),
                "high": num(self.high), "n": self.n}


def _row(name: str, stat: Statistic, first: str, second: str, x: Sequence[Optional[float]],
         y: Sequence[Optional[float]], n_boot: int, seed: int, alpha: float) -> Agreement:
    """Items where either value is missing are left out of this row only."""
    pairs = [(u, v) for u, v in zip(x, y) if u is not None and v is not None]
    a = np.array([u for u, _ in pairs], dtype=float)
    b = np.array([v for _, v in pairs], dtype=float)
    lo, hi = bootstrap_interval(stat, a, b, n_boot, seed, alpha)
    return Agreement(name, f"{first} vs {second}", stat(a, b), lo, hi, len(pairs))


def agreement_table(judge: Sequence[Optional[float]], human: Sequence[Optional[float]], scale: tuple[int, int],
                    references: Optional[Mapping[str, Sequence[Optional[float]]]] = None, *, n_boot: int = 2000,
                    seed: int = 0, alpha: float = 0.05) -> list[Agreement]:
    """The agreement rows for one set of items, in a fixed order.

    ``judge`` and ``human`` are the two scores of each item on the rubric's ``scale``
    (low, high); ``references`` maps a reference metric's name to its per-item values, in
    the same item order. ``None`` marks a value an item lacks: that item is left out of the
    rows that need it. Rows: judge vs human by Spearman, Kendall tau-b and quadratic
    weighted kappa; then for each reference metric, judge vs it and human vs it by the two
    rank correlations. Every row resamples with the same seed.
    """
    if len(judge) != len(human):
        raise ValueError(f"{len(judge)} judge scores but {len(human)} human scores")
    low, high = scale
    correlations: list[tuple[str, Statistic]] = [("spearman", spearman), ("kendall_tau_b", kendall_tau_b)]
    on_scale = correlations + [("qwk", partial(quadratic_weighted_kappa, low=low, high=high))]
    rows = [_row(name, stat, "judge", "human", judge, human, n_boot, seed, alpha) for name, stat in on_scale]
    for metric, values in (references or {}).items():
        if len(values) != len(judge):
            raise ValueError(f"{metric}: {len(values)} values for {len(judge)} items")
        for who, scores in (("judge", judge), ("human", human)):
            rows += [_row(name, stat, who, metric, scores, values, n_boot, seed, alpha) for name, stat in correlations]
    return rows
