"""How a multiple-choice answer is chosen from per-option scores (loglikelihood and
cloze modes), and the cloze length normalisations.

Rule (``choose``):

* Single-answer item: the option with the highest score; ties go to the earlier letter.
* Multi-answer item (the paper says the item is multi-answer but not how many answers
  it has): take the softmax of the options' scores, p_i = exp(s_i) / sum_j exp(s_j),
  and choose every option whose share is at least the uniform share 1/k (k = number of
  options), always including the argmax. So when all scores are equal every option is
  chosen; when one option dominates only it is. The comparison allows 1e-12 of
  floating-point slack so that exactly-uniform shares count as reaching 1/k.

The result is a sorted tuple of letters, () when there are no scores.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence, Union

Number = Union[int, float]
_SLACK = 1e-12


def _argmax(scores: Mapping[str, float]) -> str:
    best = None
    for letter in sorted(scores):
        s = scores[letter]
        if math.isnan(s):
            continue
        if best is None or s > scores[best]:
            best = letter
    return best if best is not None else sorted(scores)[0]


def choose(scores: dict[str, float], multi: bool) -> tuple[str, ...]:
    """The chosen letters (sorted) from per-option log-likelihoods; see the module doc."""
    if not scores:
        return ()
    top = _argmax(scores)
    if not multi:
        return (top,)
    m = scores[top]
    if math.isnan(m) or math.isinf(m):  # all -inf / nan, or a +inf: only the argmax is meaningful
        return (top,)
    weights = {k: (0.0 if math.isnan(s) else math.exp(s - m)) for k, s in scores.items()}
    total = sum(weights.values())
    uniform = 1.0 / len(scores)
    chosen = {k for k, w in weights.items() if w / total >= uniform - _SLACK}
    chosen.add(top)
    return tuple(sorted(chosen))


def _norm_one(logprob_sum: Number, n_tokens: Number, n_chars: Number, how: str) -> float:
    if how == "none":
        return float(logprob_sum)
    if how == "token":
        return float(logprob_sum) / max(n_tokens, 1)
    if how == "char":
        return float(logprob_sum) / max(n_chars, 1)
    raise ValueError(f"unknown normalisation {how!r}; known: none, token, char")


def normalise(logprob_sums, n_tokens, n_chars, how: str):
    """Length-normalised continuation scores for the cloze variants.

    ``how``: "none" — the summed log-probability; "token" — divided by the number of
    continuation tokens; "char" — divided by the number of characters of the
    continuation text. (lm-eval's ``acc_norm`` divides by the UTF-8 *byte* length; for
    Chinese, where a character is 3 bytes, we use characters instead, which only
    rescales Chinese-only options but treats mixed Chinese/Latin text evenly.) A zero
    count is treated as 1.

    Accepts scalars, parallel sequences (returns a list) or dicts keyed by option letter
    (returns a dict with the same keys).
    """
    if isinstance(logprob_sums, Mapping):
        return {k: _norm_one(v, n_tokens[k], n_chars[k], how) for k, v in logprob_sums.items()}
    if isinstance(logprob_sums, Sequence):
        if not (len(logprob_sums) == len(n_tokens) == len(n_chars)):
            raise ValueError("normalise: logprob_sums, n_tokens and n_chars differ in length")
        return [_norm_one(v, t, c, how) for v, t, c in zip(logprob_sums, n_tokens, n_chars)]
    return _norm_one(logprob_sums, n_tokens, n_chars, how)
