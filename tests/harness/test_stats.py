"""The paired statistics against scipy on fixed data, and the bootstrap interval's coverage
in a seeded simulation."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from aimed.harness import stats
from aimed.harness.stats import Stratum


def _binary_pair(seed, n, pa, pb):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < pa).astype(float), (rng.random(n) < pb).astype(float)


# ---- McNemar's exact test -------------------------------------------------------------
@pytest.mark.parametrize("seed,n,pa,pb", [(0, 60, 0.6, 0.75), (1, 200, 0.5, 0.5), (2, 500, 0.4, 0.55),
                                          (3, 30, 0.9, 0.2), (4, 1000, 0.7, 0.72)])
def test_mcnemar_matches_scipy_binomtest(seed, n, pa, pb):
    a, b = _binary_pair(seed, n, pa, pb)
    a_only, b_only = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    expected = sps.binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert stats.mcnemar_exact(list(a), list(b)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("k,n", [(0, 1), (0, 5), (3, 20), (10, 20), (40, 100), (7, 7), (4500, 10000),
                                 (49_000, 100_000)])
def test_binomial_tail_matches_scipy_small_and_large(k, n):
    assert stats._binom_two_sided_half(k, n) == pytest.approx(sps.binomtest(k, n, 0.5).pvalue, rel=1e-8)


def test_mcnemar_fixed_table():
    # 10 pairs only A got right, 2 only B: p = 2 * P(X <= 2 | n=12, 1/2) = 2 * 79/4096.
    a = [1] * 10 + [0] * 2 + [1] * 30 + [0] * 5
    b = [0] * 10 + [1] * 2 + [1] * 30 + [0] * 5
    assert stats.mcnemar_exact(a, b) == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert stats.mcnemar_exact(a, a) == 1.0
    assert stats.paired_test([Stratum(a, b)]) == (pytest.approx(2 * 79 / 4096), "mcnemar")


# ---- paired bootstrap -----------------------------------------------------------------
def _scipy_paired_ci(x, y, n_boot, seed):
    res = sps.bootstrap((x, y), lambda p, q, axis=-1: q.mean(axis) - p.mean(axis), paired=True,
                        vectorized=True, method="percentile", n_resamples=n_boot,
                        rng=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


def test_bootstrap_ci_equals_scipy_percentile_bootstrap():
    """Same seed, same resampled indices: the interval is scipy's to rounding."""
    rng = np.random.default_rng(11)
    x = rng.normal(0.5, 0.2, 80)
    y = x + rng.normal(0.05, 0.1, 80)
    lo, hi = stats.paired_bootstrap_ci([Stratum(list(x), list(y))], n_boot=3000, seed=3)
    s_lo, s_hi = _scipy_paired_ci(x, y, 3000, 3)
    assert (lo, hi) == (pytest.approx(s_lo, abs=1e-12), pytest.approx(s_hi, abs=1e-12))
    assert lo < (y - x).mean() < hi


def test_bootstrap_ci_binary_close_to_scipy_and_pure_python():
    a, b = _binary_pair(7, 200, 0.6, 0.7)
    strata = [Stratum(list(a), list(b))]
    lo, hi = stats.paired_bootstrap_ci(strata, n_boot=2000, seed=1)
    s_lo, s_hi = _scipy_paired_ci(a, b, 2000, 1)
    assert (lo, hi) == (pytest.approx(s_lo, abs=1e-12), pytest.approx(s_hi, abs=1e-12))
    p_lo, p_hi = stats.paired_bootstrap_ci(strata, n_boot=2000, seed=1, use_numpy=False)  # other draws
    assert abs(p_lo - lo) < 0.01 and abs(p_hi - hi) < 0.01


def test_bootstrap_is_seeded():
    a, b = _binary_pair(8, 50, 0.5, 0.6)
    s = [Stratum(list(a), list(b))]
    assert stats.paired_bootstrap_ci(s, 500, seed=5) == stats.paired_bootstrap_ci(s, 500, seed=5)
    assert stats.paired_bootstrap_ci(s, 500, seed=5) != stats.paired_bootstrap_ci(s, 500, seed=6)


def test_bootstrap_coverage_at_nominal_rate():
    """200 seeded simulated comparisons (300 paired 0/1 items, true accuracies 0.62 and 0.68,
    correlated): the 95% interval covers the true difference 0.06 in 90-99% of them."""
    rng = np.random.default_rng(2024)
    true_delta, covered, sims = 0.06, 0, 200
    for i in range(sims):
        u = rng.random(300)  # a shared item difficulty makes the two runs' answers correlated
        a = (np.where(rng.random(300) < 0.5, u, rng.random(300)) < 0.62).astype(float)
        b = (np.where(rng.random(300) < 0.5, u, rng.random(300)) < 0.68).astype(float)
        lo, hi = stats.paired_bootstrap_ci([Stratum(list(a), list(b))], n_boot=1000, seed=i)
        covered += lo <= true_delta <= hi
    rate = covered / sims
    print(f"bootstrap 95% interval coverage over {sims} simulations: {rate:.3f}")
    assert 0.90 <= rate <= 0.99


def test_weighted_strata_delta_and_interval():
    """A group's score over two tasks: delta = mean of the two deltas; the interval of the
    stratified bootstrap holds it, and a stratum of weight 0 changes nothing."""
    a1, b1 = _binary_pair(1, 100, 0.5, 0.7)
    a2, b2 = _binary_pair(2, 40, 0.3, 0.3)
    strata = [Stratum(list(a1), list(b1), 0.5), Stratum(list(a2), list(b2), 0.5)]
    d = 0.5 * (b1.mean() - a1.mean()) + 0.5 * (b2.mean() - a2.mean())
    assert stats.observed_delta(strata) == pytest.approx(d)
    lo, hi = stats.paired_bootstrap_ci(strata, 2000, seed=0)
    assert lo < d < hi
    only = stats.paired_bootstrap_ci([Stratum(list(a1), list(b1))], 2000, seed=0)
    zero = stats.paired_bootstrap_ci([Stratum(list(a1), list(b1)), Stratum(list(a2), list(b2), 0.0)], 2000, seed=0)
    assert zero == (pytest.approx(only[0]), pytest.approx(only[1]))


# ---- paired permutation (sign-flip) test -------------------------------------------------
def _scipy_sign_flip(x, y, n_resamples, statistic=None):
    stat = statistic or (lambda p, q, axis=-1: (q - p).mean(axis))
    return sps.permutation_test((x, y), stat, permutation_type="samples", vectorized=statistic is None,
                                n_resamples=n_resamples, rng=np.random.default_rng(0)).pvalue


def test_sign_flip_exact_equals_scipy_exact():
    rng = np.random.default_rng(4)
    x = rng.normal(0.4, 0.2, 12)
    y = x + rng.normal(0.08, 0.1, 12)
    expected = _scipy_sign_flip(x, y, 10**6)  # more resamples than 2^12: scipy enumerates
    s = [Stratum(list(x), list(y))]
    assert stats.sign_flip_test(s, n_perm=5000) == pytest.approx(expected, abs=1e-12)
    assert stats.sign_flip_test(s, n_perm=5000, use_numpy=False) == pytest.approx(expected, abs=1e-12)


def test_sign_flip_monte_carlo_close_to_scipy():
    rng = np.random.default_rng(5)
    x = rng.random(200)
    y = np.clip(x + rng.normal(0.02, 0.15, 200), 0, 1)
    expected = _scipy_sign_flip(x, y, 20000)
    p = stats.sign_flip_test([Stratum(list(x), list(y))], n_perm=20000, seed=1)
    print(f"sign-flip p {p:.4f} vs scipy {expected:.4f}")
    assert abs(p - expected) < 0.01


def test_sign_flip_on_binary_data_is_mcnemar():
    """Flipping the signs of 0/1 differences is the binomial test on the discordant pairs."""
    a, b = _binary_pair(9, 30, 0.5, 0.8)
    discordant = int((a != b).sum())
    assert discordant <= 20  # small enough to enumerate exactly
    exact = stats.sign_flip_test([Stratum(list(a), list(b))], n_perm=2 ** discordant)
    assert exact == pytest.approx(stats.mcnemar_exact(list(a), list(b)), rel=1e-9)


def _ratio(rows):
    """A corpus-style aggregate: sum of matches over sum of totals (like BLEU's precisions)."""
    return sum(r[0] for r in rows) / sum(r[1] for r in rows)


def test_corpus_aggregate_swap_test_equals_scipy():
    rng = np.random.default_rng(6)
    tot = rng.integers(5, 20, 10)
    a = [(int(rng.integers(0, t + 1)), int(t)) for t in tot]
    b = [(min(int(t), m + int(rng.integers(0, 4))), int(t)) for (m, _), t in zip(a, tot)]
    s = [Stratum(a, b, 1.0, _ratio)]
    ma, mb = np.array([m for m, _ in a], float), np.array([m for m, _ in b], float)
    t_ = np.array(tot, float)

    def stat(p, q):  # p, q: the permuted match counts; totals are the same on both sides
        return q.sum() / t_.sum() - p.sum() / t_.sum()

    expected = _scipy_sign_flip(ma, mb, 10**5, statistic=stat)
    assert stats.sign_flip_test(s, n_perm=5000) == pytest.approx(expected, abs=1e-12)
    assert stats.observed_delta(s) == pytest.approx(mb.sum() / t_.sum() - ma.sum() / t_.sum())
    lo, hi = stats.paired_bootstrap_ci(s, n_boot=500, seed=0)
    assert lo <= stats.observed_delta(s) <= hi


def test_no_difference_gives_p_one_and_zero_interval():
    a = [0.1, 0.5, 0.9, 1.0]
    assert stats.sign_flip_test([Stratum(a, a)]) == 1.0
    assert stats.paired_bootstrap_ci([Stratum(a, a)], 200) == (0.0, 0.0)
    assert stats.paired_test([Stratum([1, 0, 1], [1, 0, 1])]) == (1.0, "mcnemar")


def test_bad_strata_are_errors():
    with pytest.raises(ValueError):
        stats.paired_bootstrap_ci([Stratum([1, 0], [1])])
    with pytest.raises(ValueError):
        stats.sign_flip_test([Stratum([], [])])
    assert math.isnan(Stratum([], []).value([]))


@pytest.mark.parametrize("k, n", [(0, 24), (24, 24), (20, 24), (1, 3), (500, 1000)])
def test_wilson_interval_is_scipys_and_stays_within_0_1(k, n):
    from aimed.harness.stats import wilson_interval

    lo, hi = wilson_interval(k / n, n)
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert (lo, hi) == pytest.approx((ci.low, ci.high), abs=1e-6)
    assert 0.0 <= lo <= k / n <= hi <= 1.0 and hi - lo > 0
