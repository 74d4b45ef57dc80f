"""The pipeline's state: one JSON file in the output root, rewritten after every step.

The file is what makes a stopped pipeline resume: a stage is finished only when its
record has ``status: "done"``, which is written once its result *and* its gate decision
are known. It is also what the report's Pipeline section reads (``reports/pipeline.py``
reads this layout without importing the trainers), so its layout is documented here:

```json
{"format": 1, "config": "pipeline.yaml", "index_db": "...", "stages": ["pt", "sft"],
 "updated": "2026-11-25T11:00:00+0000",
 "lines": {"tiny-a": {
    "model": "base model folder or hub id", "status": "pending|running|done|stopped|error",
    "reason": "why it stopped or failed", "base_run": "run folder of the base model's scores",
    "current": {"stage": "sft", "checkpoint": "...", "run_dir": "..."},   # the policy line's tip
    "reward_model": "the rm stage's promoted checkpoint, or null",
    "stages": {"sft": {"status": "running|done", "hash": "...", "started": 0.0, "finished": 0.0,
        "parent": "...", "parent_run": "...", "output_dir": "...", "train_metrics": {},
        "checkpoints": [{"path", "step", "run_dir", "passed", "promoted", "gain"}],
        "decision": {"kind": "gate|side", "verdict": "promoted|not promoted|failed|reward model",
                     "go_on": true, "promoted_checkpoint", "promoted_run", "policy", "rank_by",
                     "failures": [{"task", "metric", "delta", "reason"}],
                     "checks": [{"task", "metric", "baseline", "candidate", "delta", "ci", "p_value",
                                 "status", "promotion", "reason"}],
                     "verdict_file": "gate_verdict.json of the stage", "summary": "one line"}}}}}}
```
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError

FORMAT = 1


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class PipelineState:
    def __init__(self, path: Path, data: dict):
        self.path, self.data = Path(path), data

    @classmethod
    def open(cls, path: Path, config_path: Path, index_db: Path, stages: list[str]) -> "PipelineState":
        """The state in ``path`` (a rerun resumes from it), or a new one."""
        path = Path(path)
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise UserError(f"{path}: not a pipeline state file ({exc}); remove it to start over, "
                                "or give another output_root") from None
            if not isinstance(data, dict) or data.get("format") != FORMAT or "lines" not in data:
                raise UserError(f"{path}: not a pipeline state file of this aimed-eval; remove it to start over, "
                                "or give another output_root")
        else:
            data = {"format": FORMAT, "lines": {}}
        data.update(config=str(config_path), index_db=str(index_db), stages=list(stages))
        return cls(path, data)

    def line(self, name: str, model: str) -> dict:
        line = self.data["lines"].setdefault(name, {"model": model, "status": "pending", "reason": "",
                                                    "base_run": None, "current": None, "reward_model": None,
                                                    "stages": {}})
        line["model"] = model
        return line

    def stage(self, line: dict, stage: str) -> Optional[dict]:
        return line["stages"].get(stage)

    def save(self) -> None:
        """Temporary file, then rename: a kill never leaves half a state file."""
        self.data["updated"] = now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, self.path)
