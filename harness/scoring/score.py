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

from typing import Any, Sequence

from ..judge.metrics import metric_names as judge_metric_names
from ..samples import Sample
from ..taskspec import Mode, TaskSpec
from . import circular, clean
from .choose import choose, normalise
from .extract import extract_choice, split_reasoning
from .metrics import METRICS, NO_ANSWER
from .protocol import PROTOCOLS

CLOZE_NORMS = ("none", "token", "char")


def sample_from_doc(doc: dict) -> Sample:
    return Sample(id=doc["id"], question=doc["question"], options=doc.get("options", {}),
                  answer=tuple(doc.get("answer", ())), target=doc.get("target", ""),
                  categories=doc.get("categories", {}), explanation=doc.get("explanation", ""),
                  labels=tuple(doc.get("labels", ())))


def predict(spec: TaskSpec, sample: Sample, mode: str, resp: Any, cloze_norm: str = "char") -> Any:
    """The prediction: a tuple of letters (multiple choice) or the generated text."""
    if spec.kind == "generation":
        return resp.strip()
    if mode == Mode.GENERATE:
        return extract_choice(split_reasoning(resp)[0], sample.options, sample.is_multi_answer)
    letters = list(sample.options)
    if mode == Mode.CLOZE:
        how = cloze_norm
        scores = {k: normalise(r[0], r[1], len(sample.options[k]), how) for k, r in zip(letters, resp)}
    else:
        scores = {k: r[0] for k, r in zip(letters, resp)}
    return choose(scores, sample.is_multi_answer)


def reported_metrics(spec: TaskSpec, mode: str, n_options: int = 0, checked: bool = False,
                     judged: Sequence[str] = ()) -> list[str]:
    """The per-item metrics a task reports in a mode: its own, plus ``no_answer`` for
    generate-mode multiple choice, plus the circular metrics of a circular run whose items
    have at most ``n_options`` options (0: not circular), plus the ``judged`` metrics a
    judge wrote into the records (``judge/metrics.py``), plus, for records ``checked``
    against training data, the clean subset's (``clean.py``)."""
    names = list(spec.metrics)
    if spec.kind == "multiple_choice" and mode == Mode.GENERATE and NO_ANSWER.name not in names:
        names.append(NO_ANSWER.name)
    if n_options:
        names += circular.metric_names(n_options)
    names += judged
    if checked:
        names += clean.metric_names(names)
    return names


def circular_options(records: list[dict]) -> int:
    """The most options an item of a circular run has; 0 when the records were not rotated."""
    return max((len(r["doc"]["options"]) for r in records if "circular" in r), default=0)


def score_record(spec: TaskSpec, record: dict, cloze_norm: str = "char") -> dict:
    """Fill a record's prediction and per-metric values in place; returns it."""
    sample = sample_from_doc(record["doc"])
    mode = record["mode"]
    pred = predict(spec, sample, mode, record["resps"], cloze_norm)
    if not pred and mode == Mode.GENERATE and (record.get("judge_read") or {}).get("letters"):
        pred = tuple(record["judge_read"]["letters"])  # the judge read what the rules could not (the cascade)
    record["filtered_resps"] = list(pred) if isinstance(pred, tuple) else pred
    if mode == Mode.GENERATE and isinstance(record["resps"], str):
        if split_reasoning(record["resps"])[1]:
            record["reasoning_trace"] = True
        else:
            record.pop("reasoning_trace", None)
        if spec.protocol:
            record[f"{spec.protocol}_read"] = PROTOCOLS.get(spec.protocol).read(sample, record["resps"])
    for name in reported_metrics(spec, mode):
        record[name] = METRICS.get(name).sample_fn(sample, pred)
    if "circular" in record:
        circular.score_rotations(record, sample, pred,
                                 lambda rotated, resp: predict(spec, rotated, mode, resp, cloze_norm))
    if "contamination" in record:
        clean.fill(record, reported_metrics(spec, mode, circular_options([record]), judged=judge_metric_names([record])))
    return record


def summarise(spec: TaskSpec, records: list[dict], with_protocol: bool = True) -> dict[str, tuple[float, float, int]]:
    """metric -> (value, standard error, items it applied to); the protocol's metrics last."""
    mode = records[0]["mode"] if records else spec.mode
    names = reported_metrics(spec, mode, circular_options(records), clean.is_checked(records),
                             judge_metric_names(records))
    out = {name: METRICS.get(name).summarise([r.get(name) for r in records]) for name in names}
    if with_protocol and spec.protocol and mode == Mode.GENERATE and records:
        protocol = PROTOCOLS.get(spec.protocol)
        samples = [sample_from_doc(r["doc"]) for r in records]
        outputs = [r["resps"] for r in records]
        readings = [r.get(f"{spec.protocol}_read") or protocol.read(s, o) for s, o, r in zip(samples, outputs, records)]
        out.update(protocol.apply(samples, outputs, readings))
    return out


def reasoning_traces(records: list[dict]) -> int:
    """How many outputs held a reasoning trace."""
    return sum(bool(r.get("reasoning_trace")) for r in records)


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
            for name, (v, se, _) in summarise(spec, members, with_protocol=False).items():
                cell[name], cell[f"{name}_stderr"] = v, se
            out[col][value] = cell
    return out
