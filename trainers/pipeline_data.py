"""The pipeline's check of a stage's training data against the eval tasks, before it trains.

A checkpoint has seen its own stage's data and that of every stage it descends from (the
line's promoted stages before it; a side stage's data trains the reward model, not the
policy). Those files are scanned for the eval items (``harness/contamination``) before the
stage trains; the result is kept in the stage's record (``DataCheck``), the stage's
checkpoints are scored with them (``eval_contamination_data``: each run then reports every
metric on the clean subset too), and a policy's ``max_contaminated`` stops the stage before
any compute is spent when the data holds more eval items than it allows.
"""

from __future__ import annotations

from typing import Optional

from aimed.harness.gate_policy import Policy
from aimed.harness.training_overlap import check_training_data
from aimed.harness.verdicts import DataCheck, Decision, DecisionKind, Failure, Line, StageVerdict

from .pipeline_config import BaseModelSpec, PipelineConfig


def lineage_files(config: PipelineConfig, base: BaseModelSpec, line: Line, stage: str) -> list[str]:
    """The training files of ``stage`` and of the stages its parent descends from."""
    from .stages import resolve_data_file

    names: list[str] = []
    for earlier in config.stages[:config.stages.index(stage)]:
        record = line.stages.get(earlier)
        if config.recipes[earlier].side or record is None or record.decision is None or not record.decision.go_on:
            continue
        names += _train_files(config.stage_keys(base, earlier))
    names += _train_files(config.stage_keys(base, stage))
    return list(dict.fromkeys(str(resolve_data_file(n)) for n in names))


def _train_files(keys: dict) -> list[str]:
    value = keys.get("train_files") or []
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [str(v) for v in value]


def check_stage_data(config: PipelineConfig, files: list[str], policy: Policy) -> DataCheck:
    """Scan ``files`` for the eval tasks' items (the scan is kept for the checkpoints' runs)."""
    from aimed.harness.taskregistry import resolve_tasks

    _, summary = check_training_data(resolve_tasks(list(config.eval_tasks)), tuple(files), None, None,
                                     progress=True, flag="train_files")
    return DataCheck(summary["files"], summary["ngram"], summary["threshold"], summary["flagged"],
                     summary["checked"], policy.max_contaminated)


def refused(check: DataCheck, policy: Policy) -> Optional[Decision]:
    """The stage's decision when its data holds more eval items than ``max_contaminated``."""
    if policy.max_contaminated is None or check.total <= policy.max_contaminated:
        return None
    reason = (f"its training data holds {check.total} eval items, more than max_contaminated "
              f"{policy.max_contaminated}")
    failures = [Failure(task, "contaminated_items", float(n), f"{n} of {check.checked[task]} items in the training data")
                for task, n in check.flagged.items() if n]
    return Decision(DecisionKind.GATE, StageVerdict.FAILED, False, None, None, None, policy.source, policy.rank_by,
                    failures, [], None, f"not trained: {reason} ({check.words})")
