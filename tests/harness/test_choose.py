"""Choosing options from per-option log-likelihoods, and the cloze normalisations."""

import math

import pytest

from aimed.harness.scoring.choose import choose, normalise


def test_single_argmax():
    assert choose({"A": -3.0, "B": -1.0, "C": -2.0}, multi=False) == ("B",)


def test_single_tie_goes_to_earlier_letter():
    assert choose({"C": -1.0, "B": -1.0, "A": -5.0}, multi=False) == ("B",)


def test_single_handles_minus_inf():
    assert choose({"A": -math.inf, "B": -7.0}, multi=False) == ("B",)
    assert choose({"A": -math.inf, "B": -math.inf}, multi=False) == ("A",)


def test_empty():
    assert choose({}, multi=False) == ()
    assert choose({}, multi=True) == ()


def test_multi_dominant_option_alone():
    # shares ~ (0.997, 0.001, ...): only A reaches 1/4
    assert choose({"A": 0.0, "B": -7.0, "C": -8.0, "D": -9.0}, multi=True) == ("A",)


def test_multi_uniform_share_threshold():
    # k=4, uniform share 0.25; log-shares chosen so A=0.4, C=0.3, B=0.2, D=0.1
    scores = {"A": math.log(0.4), "B": math.log(0.2), "C": math.log(0.3), "D": math.log(0.1)}
    assert choose(scores, multi=True) == ("A", "C")


def test_multi_threshold_is_shift_invariant():
    scores = {"A": math.log(0.4), "B": math.log(0.2), "C": math.log(0.3), "D": math.log(0.1)}
    shifted = {k: v - 1000.0 for k, v in scores.items()}
    assert choose(shifted, multi=True) == ("A", "C")


def test_multi_all_equal_chooses_all():
    assert choose({"A": -2.0, "B": -2.0, "C": -2.0, "D": -2.0, "E": -2.0}, multi=True) == tuple("ABCDE")


def test_multi_exactly_at_share_is_chosen():
    # k=4: shares 0.25, 0.25, 0.25, 0.25 minus/plus: A=0.5, B=0.25, C=0.125, D=0.125
    scores = {"A": math.log(0.5), "B": math.log(0.25), "C": math.log(0.125), "D": math.log(0.125)}
    assert choose(scores, multi=True) == ("A", "B")


def test_multi_always_includes_argmax_and_is_sorted():
    got = choose({"E": -0.1, "A": -0.2, "B": -50.0}, multi=True)
    assert got == ("A", "E")
    assert choose({"A": -math.inf, "B": -math.inf}, multi=True) == ("A",)


def test_normalise_variants():
    assert normalise(-6.0, 3, 2, "none") == -6.0
    assert normalise(-6.0, 3, 2, "token") == -2.0
    assert normalise(-6.0, 3, 2, "char") == -3.0
    assert normalise([-6.0, -4.0], [3, 4], [2, 8], "char") == [-3.0, -0.5]
    assert normalise({"A": -6.0, "B": -4.0}, {"A": 3, "B": 4}, {"A": 2, "B": 8}, "token") == {"A": -2.0, "B": -1.0}
    assert normalise(0.0, 0, 0, "char") == 0.0  # zero count treated as 1


def test_normalise_changes_choice():
    sums, chars = {"A": -6.0, "B": -9.0}, {"A": 2, "B": 6}
    assert choose(sums, multi=False) == ("A",)
    assert choose(normalise(sums, chars, chars, "char"), multi=False) == ("B",)


def test_normalise_unknown():
    with pytest.raises(ValueError):
        normalise(-1.0, 1, 1, "bytes")
