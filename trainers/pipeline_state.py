"""The pipeline's state: one JSON file in the output root, rewritten after every step.

The file is what makes a stopped pipeline resume: a stage is finished only when its
record's status is ``done``, which is written once its result *and* its gate decision are
known. It is also what the report's Pipeline section reads. Its layout is the typed
:class:`aimed.harness.verdicts.PipelineStateFile` (with a ``schema_version``; older files
are upgraded as they are read), shared by the pipeline and the report, neither importing
the other:

```json
{"schema_version": 2, "config": "pipeline.yaml", "index_db": "...", "stages": ["pt", "sft"],
 "updated": "2026-11-25T11:00:00+0000",
 "lines": {"tiny-a": {
    "model": "base model folder or hub id", "status": "pending|running|done|stopped|error",
    "reason": "why it stopped or failed", "base_run": "run folder of the base model's scores",
    "current": {"stage": "sft", "checkpoint": "...", "run_dir": "..."},   # the policy line's tip
    "reward_model": "the side stage's (rm) last checkpoint, or null",
    "stages": {"sft": {"status": "running|done", "hash": "...", "started": 0.0, "finished": 0.0,
        "parent": "...", "parent_stage": "...", "parent_run": "...", "output_dir": "...",
        "train_metrics": {}, "training": "figures first -> last",
        "checkpoints": [{"path", "step", "run_dir", "passed", "promoted", "gain", ("scores")}],
        "decision": {"kind": "gate|side", "verdict": "promoted|not promoted|failed|reward model",
                     "go_on": true, "promoted_checkpoint", "promoted_run", "candidate", "policy",
                     "rank_by", "failures": [{"task", "metric", "delta", "reason"}],
                     "checks": [{"task", "metric", "baseline", "candidate", "delta", "ci", "p_value",
                                 "test", "higher_is_better", "alpha", "status", "promotion", "reason"}],
                     "verdict_file": "gate_verdict.json of the stage", "summary": "one line"}}}}}}
```
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

from aimed.harness.verdicts import Line, PipelineStateFile, StageRecord, read_state

FIX = "remove it to start over, or give another output_root"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class PipelineState:
    """The state file in memory (``data``) and where it is saved."""

    def __init__(self, path: Path, data: PipelineStateFile):
        self.path, self.data = Path(path), data

    @classmethod
    def open(cls, path: Path, config_path: Path, index_db: Path, stages: list[str]) -> "PipelineState":
        """The state in ``path`` (a rerun resumes from it), or a new one."""
        path = Path(path)
        data = read_state(path, str(path), FIX) if path.exists() else PipelineStateFile()
        from aimed.harness.index import where

        # a PostgreSQL URL without its password: the state file is no place for one
        data.config, data.index_db, data.stages = str(config_path), where(index_db), list(stages)
        return cls(path, data)

    @property
    def lines(self) -> dict[str, Line]:
        return self.data.lines

    def line(self, name: str, model: str) -> Line:
        line = self.data.lines.setdefault(name, Line(model))
        line.model = model
        return line

    def stage(self, line: Line, stage: str) -> Optional[StageRecord]:
        return line.stages.get(stage)

    def save(self) -> None:
        """Temporary file, then rename: a kill never leaves half a state file."""
        self.data.updated = now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(self.data.to_json(), encoding="utf-8")
        os.replace(tmp, self.path)
