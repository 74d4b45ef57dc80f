"""The typed contracts of the gate and of the pipeline's state file, in one place.

The gate (``gate.py``) judges each metric row of a comparison into a :class:`Check` and a
candidate into a :class:`Verdict`; the pipeline (``trainers/pipeline*.py``) turns a stage's
verdicts into a :class:`Decision` and records its progress in :class:`PipelineStateFile`
(``pipeline_state.json``); the report (``reports/pipeline.py``) reads that file back. All
three share the words (``"pass"``, ``"not promoted"``, ``"stopped"``) through the enums
here, so a word changes in one place. The enums are ``StrEnum``: they are written to JSON
as the plain words, and compare equal to them.

The state file carries a ``schema_version``. :func:`parse_state` reads every version this
package wrote and upgrades it to the current layout (version 1 named the field ``format``
and left some keys out of older records), so the pipeline resumes from, and the report
shows, a state file an older aimed-eval wrote.

Torch-free, and imports nothing outside the harness.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .compare import MetricRow
from .errors import UserError, read_json

if TYPE_CHECKING:
    from .compare import Comparison

__all__ = ["DataCheck", "CheckStatus", "Promotion", "StageVerdict", "DecisionKind", "LineStatus", "RecordStatus", "Check",
           "Verdict", "CheckRow", "Failure", "Decision", "CheckpointRecord", "Tip", "StageRecord", "Line",
           "PipelineStateFile", "SCHEMA_VERSION", "STATE_FILE", "parse_state", "read_state"]

EPS = 1e-12  # a drop equal to max_drop is allowed, whatever the float noise
SCHEMA_VERSION = 2
STATE_FILE = "pipeline_state.json"  # in the pipeline's output_root, beside its index


class CheckStatus(StrEnum):
    """A judged row: ``fail`` when its drop is beyond what the rule allows."""
    PASS = "pass"
    FAIL = "fail"


class Promotion(StrEnum):
    """Whether a rule's ``min_gain`` was reached (a rule without one: None)."""
    MET = "met"
    NOT_MET = "not met"


class StageVerdict(StrEnum):
    """What the gate decided for a pipeline stage; said in words wherever it is shown."""
    PROMOTED = "promoted"
    NOT_PROMOTED = "not promoted"
    FAILED = "failed"
    REWARD_MODEL = "reward model"  # a side stage's (rm) checkpoint, not gated


class DecisionKind(StrEnum):
    GATE = "gate"
    SIDE = "side"


class LineStatus(StrEnum):
    """Where one base model's line through the stages stands."""
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"

    @property
    def words(self) -> str:
        """The status as the summary and the report say it."""
        return {"done": "done", "stopped": "stopped by the gate", "error": "failed", "running": "unfinished",
                "pending": "not started"}[self.value]


class RecordStatus(StrEnum):
    """A stage's record: ``done`` only once its result *and* its gate decision are known."""
    RUNNING = "running"
    DONE = "done"


def _f(x) -> Optional[float]:
    """None for a missing or NaN figure, so the JSON is valid JSON."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


# ---- the gate ---------------------------------------------------------------------------
@dataclass
class Check:
    """One metric row of a comparison judged by one policy rule: the row as compare made it,
    and the rule's fields beside it."""
    metric_row: MetricRow
    rule: str                       # the rule's name in the policy, ``task/metric`` or with ``*``
    max_drop: Optional[float]
    require_significant: bool
    min_gain: Optional[float]
    alpha: float
    status: CheckStatus
    promotion: Optional[Promotion] = None
    reason: str = ""

    # the comparison row's figures, named from the gate's side (A is the baseline, B the candidate)
    task = property(lambda self: self.metric_row.task)
    metric = property(lambda self: self.metric_row.metric)
    kind = property(lambda self: self.metric_row.kind)
    baseline = property(lambda self: self.metric_row.a)
    candidate = property(lambda self: self.metric_row.b)
    delta = property(lambda self: self.metric_row.delta)
    ci_low = property(lambda self: self.metric_row.ci_low)
    ci_high = property(lambda self: self.metric_row.ci_high)
    p_value = property(lambda self: self.metric_row.p_value)
    test = property(lambda self: self.metric_row.test)
    n = property(lambda self: self.metric_row.n)
    higher_is_better = property(lambda self: self.metric_row.higher_is_better)

    def to_dict(self) -> dict:
        """The flat row ``gate --json`` writes (NaN as null)."""
        d = {"task": self.task, "metric": self.metric, "kind": self.kind, "baseline": self.baseline,
             "candidate": self.candidate, "delta": self.delta, "ci_low": self.ci_low, "ci_high": self.ci_high,
             "p_value": self.p_value, "test": self.test, "n": self.n, "higher_is_better": self.higher_is_better,
             "rule": self.rule, "max_drop": self.max_drop, "require_significant": self.require_significant,
             "min_gain": self.min_gain, "alpha": self.alpha, "status": self.status, "promotion": self.promotion,
             "reason": self.reason}
        d = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
        d["ci"] = [d["ci_low"], d["ci_high"]]
        return d

    @property
    def drop(self) -> float:
        """How much worse the candidate is (negative: better)."""
        return -self.delta if self.higher_is_better else self.delta

    def row(self) -> "CheckRow":
        """The digest of this check that the pipeline's state file keeps."""
        return CheckRow(self.task, self.metric, _f(self.baseline), _f(self.candidate), _f(self.delta),
                        [_f(self.ci_low), _f(self.ci_high)], _f(self.p_value), self.test, self.higher_is_better,
                        self.alpha, self.status, self.promotion, self.reason)


@dataclass
class Verdict:
    """The gate's judgement of one candidate run against its baseline."""
    passed: bool
    promoted: bool
    candidate: dict
    baseline: dict
    policy: str
    alpha: float
    checks: list[Check]
    comparison: "Comparison" = field(repr=False)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == CheckStatus.FAIL]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        return {"passed": self.passed, "promoted": self.promoted, "candidate": self.candidate,
                "baseline": self.baseline, "policy": self.policy, "alpha": self.alpha,
                "failures": [c.to_dict() for c in self.failures],
                "checks": [c.to_dict() for c in self.checks],
                "notes": self.comparison.notes}

    def markdown(self, flips: int = 5) -> str:
        from .gate import render_markdown  # the renderer lives with the gate; it needs this type

        return render_markdown(self, flips)


# ---- the pipeline's state file ----------------------------------------------------------
@dataclass
class CheckRow:
    """A judged row as the state file keeps it (the report's "deltas judged")."""
    task: str
    metric: str
    baseline: Optional[float]
    candidate: Optional[float]
    delta: Optional[float]
    ci: list
    p_value: Optional[float]
    test: str
    higher_is_better: bool
    alpha: float
    status: CheckStatus
    promotion: Optional[Promotion]
    reason: str


@dataclass
class Failure:
    """A row that stopped the stage: a failed check, or a ``min_gain`` not met."""
    task: str
    metric: str
    delta: Optional[float]
    reason: str


@dataclass
class Decision:
    """The gate's decision for one stage (or a side stage's hand-over)."""
    kind: DecisionKind
    verdict: StageVerdict
    go_on: bool
    promoted_checkpoint: Optional[str]
    promoted_run: Optional[str]
    candidate: Optional[str]        # the checkpoint the decision is about (promoted or not)
    policy: Optional[str]
    rank_by: Optional[str]
    failures: list[Failure]
    checks: list[CheckRow]
    verdict_file: Optional[str]     # the stage's gate_verdict.json
    summary: str                    # one line


@dataclass
class CheckpointRecord:
    path: str
    step: Optional[int] = None
    run_dir: Optional[str] = None
    passed: Optional[bool] = None
    promoted: Optional[bool] = None
    gain: Optional[float] = None    # on the policy's rank_by row
    scores: Optional[dict] = None   # a side stage's own figures (rm: pair accuracy)


@dataclass
class Tip:
    """The checkpoint a line's next stage trains from, and the run that scored it."""
    stage: str
    checkpoint: str
    run_dir: Optional[str]


@dataclass
class DataCheck:
    """What the pipeline found when it checked a stage's training data against the eval
    tasks before training (``harness/contamination``): per task, the eval items the data
    holds, of those checked."""
    files: list[str]
    ngram: int
    threshold: float
    flagged: dict[str, int]         # task -> items found in the data
    checked: dict[str, int]         # task -> items checked
    max_contaminated: Optional[int] = None

    @property
    def total(self) -> int:
        return sum(self.flagged.values())

    @property
    def words(self) -> str:
        """``3 of 2,040 eval items in the training data (cmexam 3)``."""
        where = ", ".join(f"{t} {n}" for t, n in self.flagged.items() if n)
        limit = "" if self.max_contaminated is None else f"; max_contaminated {self.max_contaminated}"
        return (f"{self.total} of {sum(self.checked.values()):,} eval items in the training data"
                + (f" ({where})" if where else "") + limit)


@dataclass
class StageRecord:
    status: RecordStatus
    hash: str                       # the stage's settings: a rerun reuses the record when they match
    started: float
    finished: Optional[float]
    parent: str
    parent_stage: Optional[str]
    parent_run: Optional[str]
    output_dir: str
    train_metrics: dict = field(default_factory=dict)
    training: Optional[str] = None  # the training figures in words, first → last
    checkpoints: list[CheckpointRecord] = field(default_factory=list)
    decision: Optional[Decision] = None
    data_check: Optional[DataCheck] = None  # the training data against the eval tasks, before training


@dataclass
class Line:
    """One base model's run through the stages."""
    model: str
    status: LineStatus = LineStatus.PENDING
    reason: str = ""
    base_run: Optional[str] = None
    current: Optional[Tip] = None   # the policy line's tip
    reward_model: Optional[str] = None
    stages: dict[str, StageRecord] = field(default_factory=dict)


@dataclass
class PipelineStateFile:
    config: str = ""
    index_db: str = ""
    stages: list[str] = field(default_factory=list)
    lines: dict[str, Line] = field(default_factory=dict)
    updated: Optional[str] = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        data = {"schema_version": self.schema_version, **asdict(self)}
        for line in data["lines"].values():
            for rec in line["stages"].values():
                for ckpt in rec["checkpoints"]:
                    if ckpt["scores"] is None:  # only a side stage's checkpoints carry scores
                        del ckpt["scores"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1, default=str)


# ---- reading (and upgrading) a state file -----------------------------------------------
class _Bad(Exception):
    """A value that is not what the layout says; becomes the caller's UserError."""


def _get(d: Any, key: str, default: Any = None, *, required: bool = False) -> Any:
    if not isinstance(d, dict):
        raise _Bad(f"expected a mapping, got {type(d).__name__}")
    if required and key not in d:
        raise _Bad(f"no '{key}'")
    return d.get(key, default)


def _enum(cls, value, what: str):
    try:
        return cls(value)
    except ValueError:
        raise _Bad(f"{what} {value!r} is not one of {', '.join(m.value for m in cls)}") from None


def _check_row(d: dict) -> CheckRow:
    promotion = _get(d, "promotion")
    return CheckRow(_get(d, "task", required=True), _get(d, "metric", required=True), _get(d, "baseline"),
                    _get(d, "candidate"), _get(d, "delta"), list(_get(d, "ci") or [None, None]), _get(d, "p_value"),
                    str(_get(d, "test", "")), bool(_get(d, "higher_is_better", True)),
                    float(_get(d, "alpha") or 0.05),  # the policy default, for rows that did not record theirs
                    _enum(CheckStatus, _get(d, "status", "pass"), "check status"),
                    None if promotion is None else _enum(Promotion, promotion, "promotion"), str(_get(d, "reason", "")))


def _decision(d: Optional[dict]) -> Optional[Decision]:
    if d is None:
        return None
    failures = [Failure(_get(f, "task"), _get(f, "metric"), _get(f, "delta"), str(_get(f, "reason", "")))
                for f in _get(d, "failures") or []]
    return Decision(_enum(DecisionKind, _get(d, "kind", "gate"), "decision kind"),
                    _enum(StageVerdict, _get(d, "verdict", required=True), "verdict"), bool(_get(d, "go_on")),
                    _get(d, "promoted_checkpoint"), _get(d, "promoted_run"),
                    _get(d, "candidate", _get(d, "promoted_checkpoint")),  # a side decision of v1 had none
                    _get(d, "policy"), _get(d, "rank_by"), failures,
                    [_check_row(r) for r in _get(d, "checks") or []], _get(d, "verdict_file"),
                    str(_get(d, "summary", "")))


def _record(d: dict) -> StageRecord:
    ckpts = [CheckpointRecord(_get(c, "path", required=True), _get(c, "step"), _get(c, "run_dir"), _get(c, "passed"),
                              _get(c, "promoted"), _get(c, "gain"), _get(c, "scores"))
             for c in _get(d, "checkpoints") or []]
    return StageRecord(_enum(RecordStatus, _get(d, "status", "running"), "stage status"), str(_get(d, "hash", "")),
                       _get(d, "started") or 0.0, _get(d, "finished"), str(_get(d, "parent", "")),
                       _get(d, "parent_stage"), _get(d, "parent_run"), str(_get(d, "output_dir", "")),
                       dict(_get(d, "train_metrics") or {}), _get(d, "training"), ckpts,
                       _decision(_get(d, "decision")), _data_check(_get(d, "data_check")))


def _data_check(d: Optional[dict]) -> Optional[DataCheck]:
    """Absent from files written before the check existed (and from stages not checked)."""
    if d is None:
        return None
    return DataCheck([str(f) for f in _get(d, "files") or []], int(_get(d, "ngram", required=True)),
                     float(_get(d, "threshold", required=True)), dict(_get(d, "flagged") or {}),
                     dict(_get(d, "checked") or {}), _get(d, "max_contaminated"))


def _line(d: dict) -> Line:
    tip = _get(d, "current")
    stages = _get(d, "stages") or {}
    if not isinstance(stages, dict):
        raise _Bad("a line's 'stages' is not a mapping")
    return Line(str(_get(d, "model", "")), _enum(LineStatus, _get(d, "status", "pending"), "line status"),
                str(_get(d, "reason") or ""), _get(d, "base_run"),
                None if tip is None else Tip(_get(tip, "stage"), _get(tip, "checkpoint"), _get(tip, "run_dir")),
                _get(d, "reward_model"), {s: _record(r) for s, r in stages.items()})


def _version(data: dict) -> int:
    """Version 1 called it ``format``; the current one ``schema_version``."""
    version = data.get("schema_version", data.get("format"))
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Bad("no schema_version")
    return version


def parse_state(data: Any, where: str, fix: str) -> PipelineStateFile:
    """A state file's JSON, upgraded to the current layout. ``where`` names the file in
    errors and ``fix`` says what to do about a bad one (they differ between the pipeline,
    which would write over it, and the report, which only reads it)."""
    try:
        if not isinstance(data, dict) or not isinstance(data.get("lines"), dict):
            raise _Bad("no 'lines'")
        version = _version(data)
        if version > SCHEMA_VERSION:
            raise UserError(f"{where}: written by a newer aimed-eval (schema_version {version}, this one reads up "
                            f"to {SCHEMA_VERSION}); upgrade aimed-eval")
        if version < 1:
            raise _Bad(f"schema_version {version}")
        stages = data.get("stages") or []
        return PipelineStateFile(str(data.get("config", "")), str(data.get("index_db", "")), [str(s) for s in stages],
                                 {str(n): _line(line) for n, line in data["lines"].items()}, data.get("updated"))
    except (_Bad, TypeError, ValueError) as exc:
        raise UserError(f"{where}: not a pipeline state file ({exc}); {fix}") from None


def read_state(path: Path, where: str, fix: str) -> PipelineStateFile:
    """:func:`parse_state` of the file at ``path``; a UserError when it is no such file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{where}: no such file; {fix}")
    return parse_state(read_json(path, fix, where), where, fix)
