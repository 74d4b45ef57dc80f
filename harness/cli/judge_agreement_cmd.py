"""``aimed-eval judge-agreement --labels human.jsonl RUN``: how well a judged run's LLM judge
agrees with human graders, before its scores are trusted.

The labels file holds one JSON object a line, a human grade of one item of the run:
``{"task": "demo_medterm", "id": "demo_term_1", "score": 4}``, ``score`` on the judge's
rubric scale (1 to 5 for most rubrics), and optionally ``"scores": {"accuracy": 4, ...}``
per criterion for ``--criterion``. Items whose judgement was invalid are left out and
counted.

Prints, per judged task, Spearman's rho, Kendall's tau-b and the quadratic weighted kappa
of judge vs human, then the two rank correlations of the judge and of the humans with
each of the task's reference metrics (ROUGE, char F1...), each with a paired bootstrap 95%
interval and the number of items it used. Items are resampled in the labels file's
order, so the same labels, run and --seed give the same intervals.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .. import flag_types
from ..errors import UserError
from ..help_text import user_help

OVERALL = "score"  # --criterion's default: human "score" vs the record's judge_score


def add_parser(sub) -> None:
    p = sub.add_parser("judge-agreement", help="how well a run's LLM judge agrees with human scores",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run folder scored with --judge")
    p.add_argument("--labels", type=Path, required=True,
                   help='JSONL of human scores, one a line: {"task": ..., "id": ..., "score": 4}')
    p.add_argument("--criterion", default=OVERALL,
                   help="compare the overall score (default) or one rubric criterion, e.g. accuracy; "
                        "the labels then need scores.CRITERION")
    p.add_argument("--n_boot", type=flag_types.positive_int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=judge_agreement)


@dataclass(frozen=True)
class Label:
    task: str
    id: str
    score: float
    scores: dict
    where: str  # "FILE:LINE", for messages


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_labels(path: Path) -> list[Label]:
    """The label file's lines, each checked for its task, id and numeric score."""
    if not path.exists():
        raise UserError(f"{path}: no such labels file; give the JSONL file of human scores")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; give the JSONL file of human scores")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the labels file as UTF-8") from None
    labels: list[Label] = []
    seen: dict[tuple[str, str], str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{where}: not valid JSON; write one JSON object a line") from None
        if not isinstance(row, dict):
            raise UserError(f'{where}: not a JSON object; write {{"task": ..., "id": ..., "score": ...}}')
        for key in ("task", "id", "score"):
            if key not in row:
                raise UserError(f'{where}: no "{key}"; every label needs "task", "id" and "score"')
        if not isinstance(row["task"], str) or not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool):
            raise UserError(f'{where}: "task" must be a task name and "id" an item id (the doc id in the samples file)')
        if not _number(row["score"]):
            raise UserError(f'{where}: score {json.dumps(row["score"])} is not a number; give the human score, e.g. 4')
        scores = row.get("scores", {})
        if not isinstance(scores, dict) or not all(_number(v) for v in scores.values()):
            raise UserError(f'{where}: "scores" must map criteria to numbers, e.g. {{"accuracy": 4}}')
        key = (row["task"], str(row["id"]))
        if key in seen:
            raise UserError(f"{where}: task {key[0]} id {key[1]} is labelled twice (first at line "
                            f"{seen[key].rsplit(':', 1)[1]}); keep one label an item")
        seen[key] = where
        labels.append(Label(row["task"], str(row["id"]), float(row["score"]), scores, where))
    if not labels:
        raise UserError(f"{path}: no labels; write one JSON object a line")
    return labels


def _scale(run, task: str, judged: list[dict]) -> tuple[int, int]:
    """The rubric scale: results.json's aimed.judge record of the task, else the records'."""
    meta = ((run.aimed.get("judge") or {}).get("tasks") or {}).get(task) or {}
    scale = meta.get("scale") or next((r["judge"].get("scale") for r in judged if r["judge"].get("scale")), None)
    if not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(s, int) for s in scale)
            and scale[0] < scale[1]):
        raise UserError(f"{run.path}: task {task} has no judge scale [low, high]; the run folder is damaged, "
                        "judge it again")
    return scale[0], scale[1]


def _reference_metrics(run, task: str, records: list[dict]) -> list[str]:
    """The task's per-item numeric metrics (a corpus metric's per-item lists are left out)."""
    names = [m for m in run.metrics(task) if not m.startswith("judge")]
    return [m for m in names if any(r.get(m) is not None for r in records)
            and all(r.get(m) is None or isinstance(r[m], (int, float)) for r in records)]


def _check_on_scale(value: float, scale: tuple[int, int], where: str, what: str, fix: str) -> None:
    if not scale[0] <= value <= scale[1]:
        raise UserError(f"{where}: {what} {value:g} is outside the rubric's scale {scale[0]}..{scale[1]}; {fix}")


def judge_agreement(ns: argparse.Namespace) -> int:
    from ..judge.agreement import agreement_table
    from ..runfolder import read_run

    labels = read_labels(ns.labels)
    run = read_run(ns.run)
    judged = {t: [r for r in run.samples(t) if isinstance(r.get("judge"), dict)] for t in run.leaf_tasks()}
    judged = {t: rs for t, rs in judged.items() if rs}
    if not judged:
        raise UserError(f"{ns.run}: no judged items; score it with `aimed-eval run --judge` first")
    # An invalid judgement has no scores but still lists its rubric's criteria.
    known = sorted({c for rs in judged.values() for r in rs
                    for c in [*(r["judge"].get("scores") or {}), *(r["judge"].get("criteria") or [])]})
    if ns.criterion not in [OVERALL] + known:
        raise UserError(f"--criterion {ns.criterion}: not a criterion of the run's judge; choose "
                        + ", ".join([OVERALL] + known))
    field = "judge_score" if ns.criterion == OVERALL else f"judge_{ns.criterion}"

    by_key = {(t, str((r.get("doc") or {}).get("id"))): r for t, rs in judged.items() for r in rs}
    matched = [lab for lab in labels if (lab.task, lab.id) in by_key]
    if not matched:
        tasks = ", ".join(judged)
        raise UserError(f"{ns.labels}: none of its {len(labels)} labels matches a judged item of {ns.run} "
                        f"(judged tasks: {tasks}); check the labels' task and id (the doc id in the samples file)")

    rows: list[dict] = []
    invalid = 0
    for task, records in judged.items():
        scale = _scale(run, task, records)
        pairs = []  # (human, record) of the items compared
        for lab in (lab for lab in matched if lab.task == task):
            human = lab.score if ns.criterion == OVERALL else lab.scores.get(ns.criterion)
            if human is None:
                raise UserError(f'{lab.where}: no scores.{ns.criterion}; give it or choose another --criterion')
            _check_on_scale(human, scale, lab.where, "score", f"give a human score from {scale[0]} to {scale[1]}")
            record = by_key[(task, lab.id)]
            value = record.get(field)
            if record["judge"].get("invalid") or record.get("judge_invalid") or value is None:
                invalid += 1
                continue
            if not _number(value):
                raise UserError(f"{run.samples_file(task)}: item {lab.id}: {field} {json.dumps(value)} is not a "
                                "number; the run folder is damaged, judge it again")
            _check_on_scale(value, scale, f"{run.samples_file(task)}: item {lab.id}", field,
                            "the run folder is damaged, judge it again")
            pairs.append((float(human), record))
        if not pairs:
            continue
        compared = [r for _, r in pairs]
        refs = {m: [r.get(m) for r in compared] for m in _reference_metrics(run, task, compared)}
        table = agreement_table([r[field] for r in compared], [h for h, _ in pairs], scale, refs,
                                n_boot=ns.n_boot, seed=ns.seed)
        rows += [{"task": task, **row.to_dict()} for row in table]

    summary = {"criterion": ns.criterion, "labels": len(labels), "matched": len(matched),
               "unmatched": len(labels) - len(matched), "invalid": invalid,
               "compared": len(matched) - invalid, "rows": rows}
    if ns.format == "json":
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(render_text(summary))
    return 0


def _fmt(v: Optional[float]) -> str:
    return "nan" if v is None else f"{v:.4f}"


def render_text(summary: dict) -> str:
    """The rows as a table (statistic, against, value, 95% interval, n), then the counts."""
    head = ("task", "statistic", "against", "value", "95% interval", "n")
    body = [(r["task"], r["name"], r["against"], _fmt(r["value"]), f"[{_fmt(r['low'])}, {_fmt(r['high'])}]",
             str(r["n"])) for r in summary["rows"]]
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"criterion {summary['criterion']}: {summary['matched']} of {summary['labels']} labels matched "
                 f"judged items ({summary['unmatched']} matched none); {summary['invalid']} of the matched had "
                 f"invalid judgements and were left out, {summary['compared']} compared")
    if not summary["rows"]:
        lines.append("nothing to compare: every matched item's judgement was invalid")
    return "\n".join(lines) + "\n"
