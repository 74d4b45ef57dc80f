"""CircularEval: every multiple-choice item scored under each cyclic rotation of its options.

A model that prefers an option position (always "A", or never the last option) has an
accuracy that moves when the options are reordered; a gain from a new checkpoint can be
such a preference and nothing more. OpenCompass's CircularEval (Liu et al. 2023, MMBench)
rotates the options of single-answer items; here multi-answer items rotate too, the gold
set rotating with its options.

Rotation ``r`` of an item with ``k`` options puts the option text that stood at position
``(j + r) mod k`` at letter ``j``: rotation 1 of ``A. x  B. y  C. z`` is ``A. y  B. z  C. x``,
and a gold ``A`` becomes ``C``. Rotation 0 is the item as published, so its requests are
a plain run's requests (the response cache serves them) and ``acc`` is unchanged.

Per item (``record`` keys, so compare and gate pair them on items like any metric):

* ``acc_circular``: 1 when the item is right under every rotation.
* ``acc_rot{r}``: right under rotation ``r`` (``r`` >= 1; rotation 0 is ``acc``); an item
  with fewer than ``r + 1`` options has none.
* ``order_sensitivity``: 1 when the chosen option *texts* differ between rotations (the
  model's choice moved with the order), 0 when it chose the same texts every time.

Each rotation's request, raw response and reading are kept in the record's ``circular``
list, so ``aimed-eval score`` re-scores them without the model.
"""

from __future__ import annotations

from typing import Any, Callable

from ..samples import Sample
from .metrics import Metric, register_metric

ACC_CIRCULAR = "acc_circular"
ORDER_SENSITIVITY = "order_sensitivity"
MAX_ROTATIONS = 26  # one a letter: loaders refuse items with more options


def rotation_metric(r: int) -> str:
    return f"acc_rot{r}"


def _derived(sample: Sample, prediction: Any) -> None:
    """Circular metrics are computed from an item's rotations (``score_rotations``), not
    from one prediction; specs cannot name them (their kinds are empty)."""
    return None


register_metric(Metric(ACC_CIRCULAR, _derived, kinds=(),
                       description="--circular: right under every cyclic rotation of the options"))
register_metric(Metric(ORDER_SENSITIVITY, _derived, higher_is_better=False, kinds=(),
                       description="--circular: share of items whose chosen option text changes with the order"))
for _r in range(1, MAX_ROTATIONS):
    register_metric(Metric(rotation_metric(_r), _derived, kinds=(),
                           description=f"--circular: accuracy with the options rotated by {_r}"))


def rotate(sample: Sample, r: int) -> Sample:
    """The item with its options rotated by ``r`` (see the module doc) and its gold rotated with them."""
    letters = list(sample.options)
    texts = list(sample.options.values())
    k = len(letters)
    options = {letters[j]: texts[(j + r) % k] for j in range(k)}
    where = {letter: i for i, letter in enumerate(letters)}
    answer = tuple(sorted(letters[(where[a] - r) % k] for a in sample.answer))
    return Sample(id=sample.id, question=sample.question, options=options, answer=answer, target="".join(answer),
                  categories=sample.categories, where=sample.where, explanation=sample.explanation)


def rotations(sample: Sample) -> list[int]:
    """The rotations besides the published order: 1 .. k-1."""
    return list(range(1, len(sample.options)))


def metric_names(n_options: int) -> list[str]:
    """The circular metrics of a task whose items have at most ``n_options`` options."""
    return [ACC_CIRCULAR, ORDER_SENSITIVITY] + [rotation_metric(r) for r in range(1, n_options)]


def correct(sample: Sample, prediction: tuple) -> float:
    """``acc``'s reading: the chosen letters are exactly the gold set."""
    return float(set(prediction) == set(sample.answer))


def score_rotations(record: dict, sample: Sample, prediction: tuple,
                    predict: Callable[[Sample, Any], tuple]) -> None:
    """Fill ``record``'s circular metrics from its rotations (``record["circular"]``, each with
    its raw ``resps``); ``prediction`` is the published order's reading."""
    chosen = [_texts(sample, prediction)]
    right = [correct(sample, prediction)]
    for rot in record["circular"]:
        rotated = rotate(sample, rot["rotation"])
        pred = predict(rotated, rot["resps"])
        rot["filtered_resps"] = list(pred)
        rot["target"] = rotated.gold
        rot["acc"] = record[rotation_metric(rot["rotation"])] = correct(rotated, pred)
        right.append(rot["acc"])
        chosen.append(_texts(rotated, pred))
    record[ACC_CIRCULAR] = float(all(v == 1.0 for v in right))
    record[ORDER_SENSITIVITY] = float(len(set(chosen)) > 1)


def _texts(sample: Sample, prediction: tuple) -> tuple[str, ...]:
    return tuple(sorted(sample.options[p] for p in prediction if p in sample.options))
