"""Turn saved model outputs into predictions and metric values: the scoring pass.

It needs no model: ``aimed-eval score RUN_DIR`` runs it again on a run's samples files.
A record holds the item (``doc``), the mode and the raw response (``resps``): per-option
``[log-probability, tokens, greedy]`` triples for ``loglikelihood``/``cloze``, the
generated text for ``generate``.

Multi-answer items: in ``generate`` mode every stated letter is extracted; in
``loglikelihood`` and ``cloze`` modes ``choose.choose`` picks every option whose share
of the probability is at least uniform (see there). ``acc`` asks for the exact set.
"""

from __future__ import annotations

from typing import Any

from ..samples import Sample
from ..taskspec import TaskSpec
from .choose import choose, normalise
from .extract import extract_choice
from .metrics import METRICS

CLOZE_NORMS = ("none", "token", "char")


def sample_from_doc(doc: dict) -> Sample:
    return Sample(id=doc["id"], question=doc["question"], options=doc.get("options", {}),
                  answer=tuple(doc.get("answer", ())), target=doc.get("target", ""),
                  categories=doc.get("categories", {}))


def predict(spec: TaskSpec, sample: Sample, mode: str, resp: Any, cloze_norm: str = "char") -> Any:
    """The prediction: a tuple of letters (multiple choice) or the generated text."""
    if spec.kind == "generation":
        return resp.strip()
    if mode == "generate":
        return extract_choice(resp, sample.options, sample.is_multi_answer)
    letters = list(sample.options)
    if mode == "cloze":
        how = cloze_norm
        scores = {k: normalise(r[0], r[1], len(sample.options[k]), how) for k, r in zip(letters, resp)}
    else:
        scores = {k: r[0] for k, r in zip(letters, resp)}
    return choose(scores, sample.is_multi_answer)


def score_record(spec: TaskSpec, record: dict, cloze_norm: str = "char") -> dict:
    """Fill a record's prediction and per-metric values in place; returns it."""
    sample = sample_from_doc(record["doc"])
    pred = predict(spec, sample, record["mode"], record["resps"], cloze_norm)
    record["filtered_resps"] = list(pred) if isinstance(pred, tuple) else pred
    for name in spec.metrics:
        record[name] = METRICS.get(name).sample_fn(sample, pred)
    return record


def summarise(spec: TaskSpec, records: list[dict]) -> dict[str, tuple[float, float, int]]:
    """metric -> (value, standard error, items it applied to)."""
    return {name: METRICS.get(name).summarise([r[name] for r in records]) for name in spec.metrics}


def by_category(spec: TaskSpec, records: list[dict]) -> dict[str, dict[str, dict]]:
    """column -> value -> {"n": items, metric: value, metric_stderr: stderr}."""
    out: dict[str, dict[str, dict]] = {}
    columns = sorted({c for r in records for c in r["doc"].get("categories", {})})
    for col in columns:
        groups: dict[str, list[dict]] = {}
        for r in records:
            value = r["doc"].get("categories", {}).get(col)
            if value not in (None, ""):
                groups.setdefault(str(value), []).append(r)
        out[col] = {}
        for value, members in sorted(groups.items()):
            cell: dict[str, Any] = {"n": len(members)}
            for name, (v, se, _) in summarise(spec, members).items():
                cell[name], cell[f"{name}_stderr"] = v, se
            out[col][value] = cell
    return out
