"""Read a run folder for comparison: ``results.json`` and its ``samples_<task>.jsonl``
files, with one-line errors for folders that are missing, damaged or incomplete.

Works on the folders ``aimed-eval run`` writes and on lm-evaluation-harness output
folders (``results_*.json`` and ``samples_<task>_<date>.jsonl``, from ``--log_samples``).
Torch-free: compare, gate, reports and the dashboard read runs through it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import UserError, read_json


@dataclass
class RunFolder:
    path: Path
    results: dict
    _samples: dict[str, list[dict]] = field(default_factory=dict, repr=False)

    # ---- identity ---------------------------------------------------------------------
    @property
    def aimed(self) -> dict:
        return self.results.get("aimed") or {}

    def ref(self) -> dict:
        """run_id, run_dir, model, fingerprint: what a comparison says about each side."""
        model = self.aimed.get("model") or {}
        config = self.results.get("config") or {}
        name = model.get("folder") or (model.get("args") or {}).get("model") or config.get("model_args") \
            or config.get("model") or self.path.name
        return {"run_id": self.aimed.get("run_id") or self.path.name, "run_dir": str(self.path),
                "model": str(name), "fingerprint": model.get("fingerprint") or ""}

    # ---- tasks ------------------------------------------------------------------------
    def leaf_tasks(self) -> list[str]:
        """Tasks scored item by item (groups excluded), in the run's order."""
        subtasks = self.results.get("group_subtasks") or {}
        configs = self.results.get("configs") or {}
        names = list(configs) or [t for t in self.results["results"] if not subtasks.get(t)]
        return [t for t in names if not subtasks.get(t)]

    def groups(self) -> dict[str, list[str]]:
        return {g: list(m) for g, m in (self.results.get("group_subtasks") or {}).items() if m}

    def task_meta(self, task: str) -> dict:
        return (self.aimed.get("tasks") or {}).get(task) or {}

    def version(self, task: str) -> Any:
        meta = self.task_meta(task)
        return meta.get("version", (self.results.get("versions") or {}).get(task))

    def metrics(self, task: str) -> list[str]:
        """The task's metrics, as its results block lists them ("acc,none" -> "acc")."""
        block = (self.results.get("results") or {}).get(task) or {}
        names = []
        for key in block:
            if "," in key and "_stderr" not in key.split(",")[0]:
                name = key.split(",")[0]
                if name not in names:
                    names.append(name)
        return names

    def main_metric(self, task: str) -> Optional[str]:
        """The run's own record of the main metric, else the spec's primary metric, else the
        first metric of the task's results block."""
        cfg = (self.results.get("configs") or {}).get(task) or {}
        for name in (self.task_meta(task).get("main_metric"), cfg.get("primary_metric")):
            if name:
                return name
        if self.groups().get(task):
            return "score"
        listed = cfg.get("metrics") or [m.get("metric") for m in cfg.get("metric_list") or [] if isinstance(m, dict)]
        metrics = self.metrics(task)
        for name in listed:
            if name in metrics:
                return name
        return metrics[0] if metrics else None

    def higher_is_better(self, task: str, metric: str) -> bool:
        hib = (self.results.get("higher_is_better") or {}).get(task) or {}
        if metric in hib:
            return bool(hib[metric])
        from .scoring.metrics import METRICS

        return METRICS.get(metric).higher_is_better if metric in METRICS else True

    # ---- items ------------------------------------------------------------------------
    def samples_file(self, task: str) -> Path:
        own = self.path / f"samples_{task}.jsonl"
        if own.exists():
            return own
        stamped = re.compile(re.escape(f"samples_{task}_") + r"\d{4}-\d{2}-\d{2}T.*\.jsonl$")
        found = sorted(p for p in self.path.glob(f"samples_{task}_*.jsonl") if stamped.match(p.name))
        if found:
            return found[-1]  # lm-eval's: the newest by timestamp
        raise UserError(f"{own}: missing; compare needs every task's samples file "
                        f"(score the checkpoint again with `aimed-eval run`)")

    def samples(self, task: str) -> list[dict]:
        if task not in self._samples:
            f = self.samples_file(task)
            records = []
            for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    raise UserError(f"{f}:{lineno}: not a JSON object; the samples file is damaged "
                                    f"(score the checkpoint again)")
                records.append(record)
            self._samples[task] = records
        return self._samples[task]


def read_run(path: Path) -> RunFolder:
    """The run folder at ``path`` (or an lm-eval results file), checked enough to compare."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such run folder; give a folder that `aimed-eval run` wrote")
    if path.is_file():
        f, path = path, path.parent
    elif (path / "results.json").exists():
        f = path / "results.json"
    else:
        found = sorted(path.glob("results_*.json"))  # lm-eval names its file by date
        if not found:
            raise UserError(f"{path}: no results.json; give a folder that `aimed-eval run` wrote")
        f = found[-1]
    results = read_json(f, "the run folder is damaged, score the checkpoint again")
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise UserError(f"{f}: no 'results' block; not the results.json of a run folder")
    for key in ("configs", "group_subtasks", "versions", "higher_is_better", "aimed"):
        if key in results and not isinstance(results[key], dict):
            raise UserError(f"{f}: '{key}' is not a mapping; the run folder is damaged")
    return RunFolder(path, results)
