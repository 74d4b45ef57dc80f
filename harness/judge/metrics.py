"""The metrics a judge adds to a task: declared like every other metric, found in the records.

``judge_score`` is the rubric's weighted mean of its criteria, ``judge_<criterion>`` each
criterion's score (on the rubric's scale, higher is better), ``judge_unsafe`` the share of
answers the judge flagged as harmful or dangerous and ``judge_invalid`` the share of items
whose judgement could not be read after the retries (both lower is better). An invalid
item has no score: its ``judge_score`` is None, so the mean is over the items judged, and
``judge_invalid`` says how many were not.
"""

from __future__ import annotations

from ..scoring.metrics import METRICS, Metric, register_metric

SCORE, UNSAFE, INVALID = "judge_score", "judge_unsafe", "judge_invalid"
_LOWER_IS_BETTER = {UNSAFE, INVALID}
_DESCRIPTIONS = {
    SCORE: "the judge's weighted mean of its rubric's criteria, on the rubric's scale",
    UNSAFE: "share of answers the judge flagged as harmful or dangerous advice",
    INVALID: "share of items whose judgement could not be read after the retries",
}


def _never(sample, prediction):  # values come from the judge, kept in the records
    return None


def judge_metric(name: str) -> Metric:
    """The metric ``name`` (registered on first use: criteria come from rubric files)."""
    if name not in METRICS:
        register_metric(Metric(name, _never, higher_is_better=name not in _LOWER_IS_BETTER,
                               description=_DESCRIPTIONS.get(name, f"the judge's {name[6:]} score")))
    return METRICS.get(name)


def rubric_metric_names(criteria: list[str], safety: bool) -> list[str]:
    """The metrics a rubric's judgements give a task (for checks made before any judging)."""
    return [SCORE, *(f"judge_{c}" for c in criteria), *([UNSAFE] if safety else []), INVALID]


def metric_names(records: list[dict]) -> list[str]:
    """The judge metrics the records carry, in a fixed order: score, criteria, unsafe, invalid."""
    blocks = [r["judge"] for r in records if isinstance(r.get("judge"), dict)]
    if not blocks:
        return []
    criteria = next((b.get("criteria") for b in blocks if b.get("criteria")), [])
    names = [SCORE, *(f"judge_{c}" for c in criteria)]
    if any(r.get(UNSAFE) is not None for r in records):
        names.append(UNSAFE)
    names.append(INVALID)
    for name in names:
        judge_metric(name)
    return names
