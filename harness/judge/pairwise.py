"""``compare A B --judge``: the judge reads both runs' answers to each item and says which is better.

Each pair is asked twice, with the answers in both positions (A first, then B first), since
judges favour a position; the two verdicts, mapped back to the runs, either agree (a
consistent pair) or not. An inconsistent pair counts as a tie, as MT-Bench counts it, and
is reported. B's win rate is (wins + ties / 2) / items, with a percentile bootstrap
interval over the items (the two runs' answers to an item stay together: the pairing is
the unit). ``consistency`` is the share of items whose two orders agree and
``first_position`` the share of verdicts that chose whichever answer was shown first: far
from 0.5, the judge reads position, not content.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from ..errors import UserError
from ..runfolder import RunFolder
from .asking import JudgeStats, ask_all
from .parse import read_pairwise
from .records import answer_text, item_fields
from .rubric import PAIRWISE, Rubric, load_rubric
from .session import Judge

_B_SCORE = {"B": 1.0, "A": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class PairwiseRow:
    task: str
    n: int  # items with a readable verdict in both orders
    b_wins: int
    a_wins: int
    ties: int  # the judge's ties and the inconsistent pairs
    inconsistent: int  # the two orders disagreed
    invalid: int  # left out: a verdict unreadable after the retries
    win_rate: float  # B's: (wins + ties / 2) / n
    ci_low: float
    ci_high: float
    consistency: float  # share of items whose two orders agree
    first_position: float  # share of the verdicts that picked one that chose the answer shown first
    rubric: str


def _texts(run: RunFolder, task: str) -> dict[str, dict]:
    """id -> record, for records whose output is text (generation, or generate mode)."""
    out = {}
    for r in run.samples(task):
        if isinstance(r.get("resps"), str) and isinstance(r.get("doc"), dict):
            out[str(r["doc"].get("id", r.get("doc_id")))] = r
    return out


def _winner(first: Optional[str], second: Optional[str]) -> tuple[Optional[str], bool]:
    """The run that won ("A", "B", "tie") from the verdict with A's answer shown first and the one
    with B's shown first; and whether the two orders agree. None: a verdict is unreadable."""
    if first is None or second is None:
        return None, False
    swapped = {"A": "B", "B": "A", "tie": "tie"}[second]  # in the second order "A" is run B's answer
    return (first, True) if first == swapped else ("tie", False)


def bootstrap_mean_interval(values: list[float], n_boot: int, seed: int, alpha: float) -> tuple[float, float]:
    """Percentile interval of the mean over ``n_boot`` seeded resamples of the items."""
    if not values:
        return float("nan"), float("nan")
    rng, n = random.Random(seed), len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))
    lo = means[int(alpha / 2 * (n_boot - 1))]
    hi = means[int((1 - alpha / 2) * (n_boot - 1))]
    return lo, hi


def pairwise_rubric(ref: Optional[str]) -> Rubric:
    rubric = load_rubric(ref or PAIRWISE)
    if rubric.kind != "pairwise":
        raise UserError(f"--judge_rubric {ref}: {rubric.rubric} is a {rubric.kind} rubric; compare needs a pairwise "
                        "one (the default: pairwise)")
    return rubric


def text_tasks(run_a: RunFolder, run_b: RunFolder) -> list[str]:
    """The tasks both runs answered in text, with at least one item in common."""
    shared = [t for t in run_a.leaf_tasks() if t in run_b.leaf_tasks()]
    return [t for t in shared if _texts(run_a, t).keys() & _texts(run_b, t).keys()]


def judge_pairs(run_a: RunFolder, run_b: RunFolder, tasks: list[str], judge: Judge, rubric_ref: Optional[str] = None,
                n_boot: int = 2000, seed: int = 0, alpha: float = 0.05) -> tuple[list[PairwiseRow], dict]:
    """A row for each of ``tasks`` both runs answered in text; and what judging cost."""
    rubric = pairwise_rubric(rubric_ref)
    rows, total = [], JudgeStats()
    for task in tasks:
        a, b = _texts(run_a, task), _texts(run_b, task)
        keys = [k for k in a if k in b]
        if not keys:
            continue
        prompts = []
        for k in keys:
            fields = item_fields(a[k])
            first, second = answer_text(a[k]), answer_text(b[k])
            prompts.append(rubric.render({**fields, "answer_a": first, "answer_b": second}))
            prompts.append(rubric.render({**fields, "answer_a": second, "answer_b": first}))
        judged, stats = ask_all(judge.client, judge.cache, rubric, prompts, lambda i, text: read_pairwise(text),
                                progress=judge.progress, desc=f"{task} (pairwise)")
        total.add(stats)
        outcomes = [_winner(judged[2 * i].reading, judged[2 * i + 1].reading) for i in range(len(keys))]
        readable = [(w, ok) for w, ok in outcomes if w is not None]
        picks = [j.reading for j in judged if j.reading in ("A", "B")]  # ties pick no position
        first_pos = sum(v == "A" for v in picks) / len(picks) if picks else float("nan")
        scores = [_B_SCORE[w] for w, _ in readable]
        lo, hi = bootstrap_mean_interval(scores, n_boot, seed, alpha)
        n = len(readable)
        rows.append(PairwiseRow(
            task=task, n=n, b_wins=sum(w == "B" for w, _ in readable), a_wins=sum(w == "A" for w, _ in readable),
            ties=sum(w == "tie" for w, _ in readable), inconsistent=sum(not ok for _, ok in readable),
            invalid=len(keys) - n, win_rate=sum(scores) / n if n else float("nan"), ci_low=lo, ci_high=hi,
            consistency=sum(ok for _, ok in readable) / n if n else float("nan"),
            first_position=first_pos,
            rubric=rubric.rubric))
    return rows, total.to_dict()
