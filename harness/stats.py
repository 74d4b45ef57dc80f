"""Paired statistics for comparing two runs item by item (torch-free).

Both runs scored the same items, so every comparison here is *paired*: resampling and
permutation act on items, keeping each item's two scores together.

A comparison is made over one or more **strata**. A stratum is one task's metric: the
per-item values of run A and run B (numbers, or a corpus metric's sufficient statistics),
a weight and an aggregate (``None``: the mean). The compared quantity is

    delta = sum_s weight_s * (aggregate_s(B_s) - aggregate_s(A_s))

so one task is a single stratum of weight 1, and a group's ``score`` (the unweighted mean
of its members' main metrics) or a size-weighted group metric is several.

* ``paired_bootstrap_ci``: percentile interval of delta over ``n_boot`` resamples of the
  items (drawn within each stratum), as ``scipy.stats.bootstrap(paired=True,
  method="percentile")`` computes it.
* ``mcnemar_exact``: McNemar's exact test for a 0/1 metric, the two-sided binomial test
  (p = 1/2) on the discordant pairs, as ``scipy.stats.binomtest``.
* ``sign_flip_test``: the paired permutation test for any metric: under "no difference"
  each item's two scores are exchangeable, so swapping them (for a mean: flipping the
  sign of the item's difference) leaves the distribution unchanged. Exact (every
  swap pattern of the items that differ) when there are few of them, else Monte Carlo
  with ``(hits + 1) / (n + 1)``, as ``scipy.stats.permutation_test``.

numpy vectorises the mean strata when it is installed; without it the same procedures run
in pure Python (same answers for the exact tests, other random draws for the resampling).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

# numpy is imported on first use, not at import: the leaderboard and the report import this
# module (through compare) and stay free of numpy until a comparison is computed.
np: Any = None


def _have_numpy() -> bool:
    global np
    if np is None:
        try:
            import numpy
        except ImportError:  # pragma: no cover - numpy comes with the harness's dependencies
            return False
        np = numpy
    return True

# Elements per numpy block (resamples x items), so memory stays ~10 MB on big tasks.
_BLOCK = 1_000_000
# Relative slack when comparing a resampled statistic with the observed one, so that
# floating-point noise does not decide ties (scipy.stats.permutation_test does the same).
_TIE_EPS = 1e-12


@dataclass(frozen=True)
class Stratum:
    """One task's metric: paired per-item values of A and B (same order, no ``None``)."""

    a: Sequence[Any]
    b: Sequence[Any]
    weight: float = 1.0
    aggregate: Optional[Callable[[list], float]] = None  # None: the mean

    @property
    def is_mean(self) -> bool:
        return self.aggregate is None

    def value(self, values: Sequence[Any]) -> float:
        if self.aggregate is None:
            return sum(values) / len(values) if len(values) else float("nan")
        return float(self.aggregate(list(values)))


def wilson_interval(share: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's score interval of a proportion (``share`` of ``n`` items), 95% by default.
    Unlike share ± z·se it never leaves [0, 1] and is not zero-wide at 0 or 1."""
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    denom = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denom
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # at 0 and 1 the bound is the share itself, exactly (the float sum misses it by an ulp)
    return (0.0 if share <= 0 else lo), (1.0 if share >= 1 else hi)


# scores that are a share of items (right, order-sensitive, found in the training data,
# unanswered): Wilson's interval; acc_rot<r> and a proportion's _clean are proportions too
PROPORTIONS = ("acc", "acc_circular", "order_sensitivity", "contaminated", "no_answer")


def is_proportion(metric: str) -> bool:
    import re

    name = metric[:-len("_clean")] if metric.endswith("_clean") else metric
    return name in PROPORTIONS or re.fullmatch(r"acc_rot\d+", name) is not None


def score_interval95(value: Optional[float], se: Optional[float], n: Optional[int],
                     metric: str) -> Optional[tuple[float, float]]:
    """A score's 95% interval, within [0, 1]: Wilson's score interval for an accuracy (a
    share of ``n`` items; value ± 1.96 se would leave [0, 1] near 0 and 1, and be zero-wide
    at them), else value ± 1.96 standard errors, cut to [0, 1] where the score lies in it
    (every score here is a mean of per-item values in [0, 1]). None: nothing to go on."""
    if value is None:
        return None
    if is_proportion(metric) and n and 0.0 <= value <= 1.0:
        return wilson_interval(value, int(n))
    if se is None:
        return None
    lo, hi = value - 1.96 * se, value + 1.96 * se
    return (max(0.0, lo), min(1.0, hi)) if 0.0 <= value <= 1.0 else (lo, hi)


def _check(strata: Sequence[Stratum]) -> None:
    for s in strata:
        if len(s.a) != len(s.b):
            raise ValueError(f"paired values differ in length: {len(s.a)} vs {len(s.b)}")
        if not len(s.a):
            raise ValueError("a stratum without items")


def observed_delta(strata: Sequence[Stratum]) -> float:
    _check(strata)
    return sum(s.weight * (s.value(s.b) - s.value(s.a)) for s in strata)


def is_binary(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v in (0, 1) for v in values)


# ---- McNemar's exact test -------------------------------------------------------------
def _binom_two_sided_half(k: int, n: int) -> float:
    """Two-sided exact binomial p-value for k successes in n trials at p = 1/2.

    The distribution is symmetric, so the p-value is twice the smaller tail, at most 1.
    Summed in log space so that n in the hundreds of thousands neither overflows nor
    loses the tail."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    if 2 * k == n:
        return 1.0
    log_half_n = n * math.log(0.5)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n for i in range(k + 1)]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(x - top) for x in logs)
    return min(1.0, 2.0 * tail)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> float:
    """McNemar's exact p-value for paired 0/1 outcomes: a binomial test on the discordant
    pairs (A right and B wrong vs A wrong and B right)."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    a_only = sum(1 for x, y in zip(a, b) if x == 1 and y == 0)
    b_only = sum(1 for x, y in zip(a, b) if x == 0 and y == 1)
    return _binom_two_sided_half(a_only, a_only + b_only)


# ---- paired bootstrap -----------------------------------------------------------------
def _percentile(sorted_vals: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile of sorted values (numpy's default method)."""
    pos = (len(sorted_vals) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _boot_deltas_numpy(s: Stratum, n_boot: int, rng) -> "np.ndarray":
    n = len(s.a)
    out = np.empty(n_boot)
    rows = max(1, _BLOCK // n)
    if s.is_mean:
        d = np.asarray(s.b, dtype=float) - np.asarray(s.a, dtype=float)
        for start in range(0, n_boot, rows):
            idx = rng.integers(0, n, (min(rows, n_boot - start), n))
            out[start:start + len(idx)] = d[idx].mean(axis=1)
        return out
    for r in range(n_boot):
        idx = rng.integers(0, n, n)
        out[r] = s.value([s.b[i] for i in idx]) - s.value([s.a[i] for i in idx])
    return out


def _boot_deltas_python(s: Stratum, n_boot: int, rng: random.Random) -> list[float]:
    n = len(s.a)
    out = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        out.append(s.value([s.b[i] for i in idx]) - s.value([s.a[i] for i in idx]))
    return out


def bootstrap_deltas(strata: Sequence[Stratum], n_boot: int = 2000, seed: int = 0,
                     use_numpy: bool = True) -> list[float]:
    """``n_boot`` resampled values of delta (items resampled within each stratum)."""
    _check(strata)
    if use_numpy and _have_numpy():
        rng = np.random.default_rng(seed)
        total = np.zeros(n_boot)
        for s in strata:
            total += s.weight * _boot_deltas_numpy(s, n_boot, rng)
        return total.tolist()
    prng = random.Random(seed)
    total = [0.0] * n_boot
    for s in strata:
        for i, d in enumerate(_boot_deltas_python(s, n_boot, prng)):
            total[i] += s.weight * d
    return total


def paired_bootstrap_ci(strata: Sequence[Stratum], n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                        use_numpy: bool = True) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of delta."""
    deltas = sorted(d for d in bootstrap_deltas(strata, n_boot, seed, use_numpy) if not math.isnan(d))
    if not deltas:
        return float("nan"), float("nan")
    return _percentile(deltas, alpha / 2), _percentile(deltas, 1 - alpha / 2)


# ---- paired permutation (sign-flip) test -------------------------------------------------
def _differing(strata: Sequence[Stratum]) -> list[tuple[int, int]]:
    """(stratum, item) of the items whose two values differ: only they can be swapped."""
    return [(si, i) for si, s in enumerate(strata) for i in range(len(s.a)) if s.a[i] != s.b[i]]


def _swapped_delta(strata: Sequence[Stratum], flips: dict[int, set[int]]) -> float:
    """delta with the items in ``flips`` (per stratum) swapped between A and B."""
    total = 0.0
    for si, s in enumerate(strata):
        f = flips.get(si, ())
        a = [s.b[i] if i in f else s.a[i] for i in range(len(s.a))]
        b = [s.a[i] if i in f else s.b[i] for i in range(len(s.a))]
        total += s.weight * (s.value(b) - s.value(a))
    return total


def _coefficients(strata: Sequence[Stratum], items: list[tuple[int, int]]) -> list[float]:
    """For mean strata, delta is linear in the item differences: delta = sum_j c_j, with
    c_j = weight * (b - a) / n; a swap flips the sign of c_j."""
    return [strata[si].weight * (float(strata[si].b[i]) - float(strata[si].a[i])) / len(strata[si].a)
            for si, i in items]


def _exact_signs_numpy(start: int, k: int, m: int) -> "np.ndarray":
    """Rows start..start+k of the 2^m sign patterns: row r flips the items whose bit is set."""
    codes = np.arange(start, start + k)[:, None]
    return 1.0 - 2.0 * ((codes >> np.arange(m)) & 1)


def sign_flip_test(strata: Sequence[Stratum], n_perm: int = 2000, seed: int = 0,
                   use_numpy: bool = True) -> float:
    """Two-sided p-value of the paired permutation test of delta = 0: the share of swap
    patterns whose |delta| reaches the observed |delta|."""
    _check(strata)
    observed = observed_delta(strata)
    if math.isnan(observed):
        return float("nan")
    items = _differing(strata)
    if not items or observed == 0:
        return 1.0
    bar = abs(observed) * (1 - _TIE_EPS)
    m = len(items)
    exact = m <= 24 and 2 ** m <= n_perm
    total = 2 ** m if exact else n_perm
    hits = 0
    if all(s.is_mean for s in strata) and use_numpy and _have_numpy():
        coef = np.array(_coefficients(strata, items))
        rng = np.random.default_rng(seed)
        rows = max(1, _BLOCK // m)
        for start in range(0, total, rows):
            k = min(rows, total - start)
            signs = _exact_signs_numpy(start, k, m) if exact else 1.0 - 2.0 * rng.integers(0, 2, (k, m))
            hits += int((np.abs(signs @ coef) >= bar).sum())
    else:
        coef = _coefficients(strata, items) if all(s.is_mean for s in strata) else None
        prng = random.Random(seed)
        for r in range(total):
            flip = [bool((r >> j) & 1) if exact else prng.random() < 0.5 for j in range(m)]
            if coef is not None:
                value = sum(-c if f else c for c, f in zip(coef, flip))
            else:
                flips: dict[int, set[int]] = {}
                for (si, i), f in zip(items, flip):
                    if f:
                        flips.setdefault(si, set()).add(i)
                value = _swapped_delta(strata, flips)
            hits += abs(value) >= bar
    return hits / total if exact else (hits + 1) / (n_perm + 1)


def paired_test(strata: Sequence[Stratum], n_perm: int = 2000, seed: int = 0) -> tuple[float, str]:
    """(p-value, test name): McNemar's exact test for one 0/1 stratum, else the sign-flip
    permutation test."""
    if len(strata) == 1 and strata[0].is_mean and is_binary(strata[0].a) and is_binary(strata[0].b):
        return mcnemar_exact(strata[0].a, strata[0].b), "mcnemar"
    return sign_flip_test(strata, n_perm, seed), "permutation"
