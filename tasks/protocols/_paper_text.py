"""BLEU and ROUGE as the CMExam paper's evaluation computes them, written here from their rules.

The paper's script imports ``rouge_score`` and ``bleu_score`` from an ``evaluate.utils`` module
that its repository does not ship; the functions of those names and signatures are PETER's
``utils.py`` (lileipisces/PETER), which call tensorflow/nmt's ``scripts/bleu.py``
(``compute_bleu``) and ``scripts/rouge.py`` (the tf-seq2seq ROUGE). Their rules:

* BLEU (``corpus_bleu``): corpus-level; n-gram counts clipped by the one reference; the
  precisions of orders 1..N, no smoothing, geometric mean 0 when any precision is 0; brevity
  penalty exp(1 - r/c) when c <= r (r, c: reference and hypothesis token totals). Scaled by 100.
* ROUGE-N (``rouge_n``): on the SETS of n-grams (duplicates count once); P = overlap/|hyp|,
  R = overlap/|ref| (0 when empty), F = 2PR/(P+R+1e-8).
* ROUGE-L (``rouge_l``): sentence-level LCS; R = L/m, P = L/n, beta = P/(R+1e-12),
  F = (1+beta^2)RP/(R+beta^2 P+1e-12). The task score is the mean F over items, scaled by 100.

Where that code would divide by zero (every hypothesis empty, for BLEU) this gives 0.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

Tokens = Sequence[str]
BleuStats = tuple[tuple[int, ...], tuple[int, ...], int, int]  # matches, possible (orders 1..4), ref len, hyp len


def bleu_stats(reference: Tokens, hypothesis: Tokens, max_order: int = 4) -> BleuStats:
    """One item's sufficient statistics for corpus BLEU (orders 1..max_order)."""
    def grams(tokens):
        return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                       for i in range(len(tokens) - n + 1))

    overlap = grams(hypothesis) & grams(reference)
    matches = [0] * max_order
    for gram, count in overlap.items():
        matches[len(gram) - 1] += count
    possible = tuple(max(len(hypothesis) - n + 1, 0) for n in range(1, max_order + 1))
    return tuple(matches), possible, len(reference), len(hypothesis)


def corpus_bleu(stats: Sequence[BleuStats], max_order: int) -> float:
    """BLEU-``max_order`` x 100 from per-item statistics (see the module doc)."""
    matches = [sum(s[0][i] for s in stats) for i in range(max_order)]
    possible = [sum(s[1][i] for s in stats) for i in range(max_order)]
    ref_len, hyp_len = sum(s[2] for s in stats), sum(s[3] for s in stats)
    precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible)]
    if min(precisions) <= 0 or ref_len == 0 or hyp_len == 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) / max_order for p in precisions))
    ratio = hyp_len / ref_len
    bp = 1.0 if ratio > 1.0 else math.exp(1 - 1.0 / ratio)
    return geo_mean * bp * 100


def rouge_n(hypothesis: Tokens, reference: Tokens, n: int) -> float:
    hyp = {tuple(hypothesis[i:i + n]) for i in range(len(hypothesis) - n + 1)}
    ref = {tuple(reference[i:i + n]) for i in range(len(reference) - n + 1)}
    overlap = len(hyp & ref)
    precision = overlap / len(hyp) if hyp else 0.0
    recall = overlap / len(ref) if ref else 0.0
    return 2.0 * ((precision * recall) / (precision + recall + 1e-8))


def lcs_length(a: Tokens, b: Tokens) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison & Dix 1986): one
    big-integer step per token of ``a`` instead of a len(a) x len(b) table, which keeps
    6,800 explanations of a few hundred characters fast."""
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for tok in a:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_l(hypothesis: Tokens, reference: Tokens) -> float:
    lcs = lcs_length(hypothesis, reference)
    m, n = len(reference), len(hypothesis)
    if m == 0 or n == 0:
        return 0.0
    r_lcs, p_lcs = lcs / m, lcs / n
    beta = p_lcs / (r_lcs + 1e-12)
    num = (1 + beta ** 2) * r_lcs * p_lcs
    denom = r_lcs + (beta ** 2) * p_lcs
    return num / (denom + 1e-12)
