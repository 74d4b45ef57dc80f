"""The gate policy file (``gates.yaml``): which drops fail a candidate, which gains promote it.

```yaml
alpha: 0.05              # significance level of the paired tests (rules may override)
rank_by: suite/score     # choose_best ranks passing candidates by this row's delta
rules:                   # task -> metric -> rule; "*" matches every task (groups too)
  "*":                   #   or every metric of a task; "suite" is the suite's score
    "*": {max_drop: 0.0, require_significant: true}
  cmexam:
    acc: {max_drop: 0.01, require_significant: false, min_gain: 0.005}
  suite:
    score: {max_drop: 0.0, min_gain: 0.01}
```

For each row of the comparison (baseline -> candidate) the most specific rule applies:
``task/metric``, then ``task/*``, then ``*/metric``, then ``*/*``. Rows no rule matches are
reported but not judged. A rule:

* ``max_drop``: the largest drop allowed (metric units; a drop is a fall for
  higher-is-better metrics, a rise for the others). ``null``: drops are not judged.
* ``require_significant``: a drop larger than ``max_drop`` fails only when the paired
  test finds it significant at ``alpha``. Also asked of the gain for promotion.
* ``min_gain``: the gain required for promotion (``null``: none asked).
* ``alpha``: this rule's significance level.

Two keys judge against the training data (runs scored with ``--contamination_data``, or by
the pipeline, which checks each stage's training files; ``docs/contamination.md``):

* ``on: clean``: every row is compared over the items that neither checkpoint's training
  data contains (``on: all``, the default: over every item).
* ``max_contaminated: N``: the candidate fails when its training data holds more than
  ``N`` of the eval items (the pipeline checks this before it trains the stage).

Unknown keys are errors, in the file and in every rule, and values are checked strictly
(``"yes"`` is not a boolean). Without a policy file the built-in default fails on any
significant drop (p < 0.05) of any metric of any task or group of the run.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .errors import UserError, did_you_mean

ANY = "*"
SUITE = "suite"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_drop: Optional[float] = Field(default=0.0, ge=0)
    require_significant: bool = True
    min_gain: Optional[float] = None
    alpha: Optional[float] = Field(default=None, gt=0, lt=1)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    alpha: float = Field(default=0.05, gt=0, lt=1)
    n_boot: int = Field(default=2000, ge=100)
    seed: int = 0
    rank_by: str = f"{SUITE}/score"
    on: Literal["all", "clean"] = "all"
    max_contaminated: Optional[int] = Field(default=None, ge=0)
    rules: dict[str, dict[str, Rule]] = Field(default_factory=lambda: {ANY: {ANY: Rule()}})

    _source: str = PrivateAttr(default="built-in default")  # the file it came from

    @property
    def source(self) -> str:
        return self._source

    @property
    def ranked(self) -> "RankBy":
        """``rank_by`` parsed (a UserError naming the policy when it is no ``task/metric``)."""
        return parse_rank_by(self.rank_by, self._source)

    def rule_for(self, task: str, metric: str, kind: str) -> Optional[tuple[str, Rule]]:
        """(name of the rule, the rule) for a comparison row, or None."""
        tasks = [task] if kind == "suite" else [task, ANY]
        for t in tasks:
            for m in (metric, ANY):
                rule = self.rules.get(t, {}).get(m)
                if rule is not None:
                    return f"{t}/{m}", rule
        return None


DEFAULT = Policy()


@dataclass(frozen=True)
class RankBy:
    """The comparison row ``choose_best`` ranks passing candidates by."""
    task: str
    metric: str

    def __str__(self) -> str:
        return f"{self.task}/{self.metric}"


def parse_rank_by(value, where: str) -> RankBy:
    """``task/metric`` (a task or group name, one of its metrics); the one parser of
    ``rank_by``, for the gate and for the pipeline's stages alike."""
    task, sep, metric = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not (sep and task.strip() and metric.strip()) or "/" in metric:
        raise UserError(f"{where}: rank_by {value!r}: give one task/metric row, such as suite/score or cmexam/acc")
    return RankBy(task.strip(), metric.strip())


def check_rank_by(policy: Policy, metrics: Mapping[str, Collection[str]], where: str, scored: str) -> RankBy:
    """``rank_by`` names one of ``metrics`` (task -> its metric names): an unknown one would
    rank every candidate as equal and promote the first. ``scored`` says where the names
    come from in the message (``the runs do not both have``, ``eval.tasks does not score``)."""
    rank = parse_rank_by(policy.rank_by, where)
    tasks = sorted(metrics)
    if rank.task not in metrics:
        raise UserError(f"{where}: rank_by '{rank}' names task '{rank.task}', which {scored}"
                        f"{did_you_mean(rank.task, tasks)}; tasks: {', '.join(tasks[:12])}"
                        f"{' ...' if len(tasks) > 12 else ''}")
    have = sorted(metrics[rank.task])
    if rank.metric not in have:
        raise UserError(f"{where}: rank_by '{rank}': {rank.task} has no metric '{rank.metric}'"
                        f"{did_you_mean(rank.metric, have)}; give task/metric, metrics: {', '.join(have)}")
    return rank


def _where(loc: tuple) -> str:
    return ".".join(str(x) for x in loc) or "(top level)"


def load_policy(path: Path) -> Policy:
    """Read and check a policy file; one-line UserError naming the file and the key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--policy {path}: no such file; give a gates.yaml (see docs/gates.example.yaml)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        raise UserError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc}); fix the file") from None
    return parse_policy(data, str(path))


def parse_policy(data, source: str) -> Policy:
    """Check a policy given as data (a gates.yaml read, or a policy inline in another file,
    such as pipeline.yaml's ``gate``); ``source`` names where it came from in errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: the policy must be a mapping of alpha, rank_by, rules")
    if True in data:  # YAML 1.1 reads a bare `on:` key as the boolean true
        data = {("on" if k is True else k): v for k, v in data.items()}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            known = list(Rule.model_fields) if len(loc) > 1 and loc[0] == "rules" else list(Policy.model_fields)
            raise UserError(f"{source}: unknown key '{loc[-1]}' at {_where(loc)}"
                            f"{did_you_mean(str(loc[-1]), known)}; known keys: {', '.join(known)}") from None
        hint = ("; rules map task -> metric -> {max_drop, require_significant, min_gain, alpha}"
                if loc and loc[0] == "rules" and len(loc) < 4 else "")
        raise UserError(f"{source}: {_where(loc)}: {err['msg']} (got {err.get('input')!r}){hint}") from None
    policy._source = source
    parse_rank_by(policy.rank_by, source)  # its form now; whether the runs have it, once they are known
    return policy


def check_names(policy: Policy, rows: list, where: str) -> None:
    """Every task and metric a policy names must be in the comparison: a misspelt name
    would otherwise silently judge nothing."""
    tasks = sorted({r.task for r in rows})
    for task, metrics in policy.rules.items():
        if task != ANY and task not in tasks:
            raise UserError(f"{where}: rules names task '{task}', which the runs do not both have"
                            f"{did_you_mean(task, tasks)}; tasks: {', '.join(tasks)}")
        for metric in metrics:
            if metric == ANY:
                continue
            have = sorted({r.metric for r in rows if task in (ANY, r.task) and (task != ANY or r.kind != "suite")})
            if metric not in have:
                raise UserError(f"{where}: rules.{task} names metric '{metric}', which "
                                f"{'no task has' if task == ANY else task + ' does not have'}"
                                f"{did_you_mean(metric, have)}; metrics: {', '.join(have)}")
    if "rank_by" in policy.model_fields_set:  # the default: judged where a suite row exists
        known: dict[str, set] = {}
        for r in rows:
            known.setdefault(r.task, set()).add(r.metric)
        check_rank_by(policy, known, where, "the runs do not both have")
