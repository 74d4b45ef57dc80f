"""Checkpoint scoring off the training path: ``scoring:`` in a pipeline config.

```yaml
scoring: {executor: local, workers: 1}                        # processes on this machine
scoring: {executor: ray, address: 10.0.0.5:6379, gpus_per_job: 1}   # a Ray cluster
```

Without it (``executor: inline``, the default) a stage scores each checkpoint as it saves
it, and training waits for the scores. With it the stage only writes each checkpoint's
manifest; the pipeline watches the stage folder and hands every completed checkpoint
(its manifest is what marks it complete) to the sweep's executor as one job
(harness/sweep), and training goes on. The base model's scoring runs beside the first
stage's training too. Scores land in the results index as each job finishes; the
pipeline alone writes the index, as the sweep's driver does, so no job is recorded twice
whatever retries a dead worker took. The gate waits for the scores it needs: the
parent's run and every checkpoint of its stage.

Launched stages (``launcher:``) are watched the same way: the watcher reads the folder,
not the training process.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aimed.harness.errors import UserError
from aimed.harness.manifest import MANIFEST
from aimed.harness.models.args import ModelArgs
from aimed.harness.runner import RunOptions
from aimed.harness.sweep import JobQueue, JobResult, JobSpec, Status, record_result

from .progress import write

WATCH_S = 0.5  # how often a training stage's folder is looked at for new checkpoints


class ScoringEntry(BaseModel):
    """``scoring:`` of a pipeline config."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    executor: Literal["inline", "local", "ray"] = "inline"
    workers: int = Field(default=1, ge=1)  # local: jobs at once
    address: Optional[str] = None  # ray: the head's HOST:PORT or auto (default: RAY_ADDRESS, ...)
    cpus_per_job: float = Field(default=1.0, gt=0)
    gpus_per_job: float = Field(default=0.0, ge=0, le=1)
    retries: int = Field(default=2, ge=0)  # times a job whose worker died is run again
    connect_timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _executor_keys(self) -> "ScoringEntry":
        if self.address is not None and self.executor != "ray":
            raise ValueError("address is for executor: ray; add executor: ray or drop address")
        return self

    @property
    def elsewhere(self) -> bool:
        return self.executor != "inline"


def _executor(entry: ScoringEntry):
    if entry.executor == "ray":
        from aimed.harness.sweep.ray_executor import RayExecutor

        executor = RayExecutor(entry.address, entry.cpus_per_job, entry.gpus_per_job, entry.retries,
                               entry.connect_timeout)
        try:
            executor.connect()
        except UserError as exc:  # its messages name the sweep's flags; here they are the config's keys
            said = exc.message.replace("--address", "scoring.address").replace("--executor ray", "scoring.executor")
            raise UserError(said.replace("--cpus_per_job", "scoring.cpus_per_job")
                            .replace("--gpus_per_job", "scoring.gpus_per_job")
                            .replace("(--connect_timeout)", "(scoring.connect_timeout)")) from None
        return executor
    from aimed.harness.sweep.local import LocalExecutor, gpu_slots

    return LocalExecutor(entry.workers, entry.retries, gpu_slots(entry.gpus_per_job) if entry.gpus_per_job else None)


class ScoringService:
    """One executor for the whole pipeline run; jobs go in as checkpoints appear.

    ``db``: the results index (the service alone records in it); ``output_root``: where its
    job logs go while it runs. ``submit`` returns a job number; ``wait`` blocks until that
    job has reported and returns its result (a failure when the executor itself failed)."""

    def __init__(self, entry: ScoringEntry, db: Union[Path, str], output_root: Path):
        self.entry, self.db = entry, db
        self.log_dir = output_root / f".aimed-scoring-{uuid.uuid4().hex[:8]}"
        self.executor = _executor(entry)  # an unreachable cluster fails here, before any training
        self.queue = JobQueue()
        self._results: dict[int, JobResult] = {}
        self._labels: dict[int, str] = {}
        self._on_done: dict[int, Callable[[JobResult], None]] = {}
        self._task_keys: dict[tuple, str] = {}  # (tasks, options) -> skip.task_key
        self._changed = threading.Condition()
        self._stopped: Optional[str] = None  # why the executor stopped taking jobs
        self._thread = threading.Thread(target=self._drive, name="aimed-scoring", daemon=True)
        self._thread.start()

    def describe(self) -> str:
        return self.executor.describe()

    def _drive(self) -> None:
        why = "the scoring executor stopped"
        try:
            self.executor.run(self.queue, self._report)
        except UserError as exc:  # a Ray cluster gone mid-run
            why = exc.message
        except Exception as exc:  # noqa: BLE001 - said where the gate waits, not lost in a thread
            why = f"the scoring executor failed ({type(exc).__name__}: {str(exc)[:200]})"
        finally:
            with self._changed:
                self._stopped = why
                self._changed.notify_all()

    def _report(self, result: JobResult) -> None:
        if result.index in self._results:  # reported before: never recorded twice
            return
        if result.status is Status.SCORED and result.results is not None:
            result = record_result(self.db, result)
        callback = self._on_done.get(result.index)
        if callback is not None:
            callback(result)
        with self._changed:
            self._results[result.index] = result
            self._changed.notify_all()

    def submit(self, label: str, model: ModelArgs, tasks: list[str], opts: RunOptions, output_root: Path,
               meta: Optional[dict] = None, on_done: Optional[Callable[[JobResult], None]] = None) -> int:
        from aimed.harness.sweep.skip import task_key
        from aimed.harness.sweep.specs import check_tasks
        from aimed.harness.taskregistry import DATA_ENV, data_root

        index = len(self._labels)
        self._labels[index] = label
        if on_done is not None:
            self._on_done[index] = on_done
        key = (tuple(tasks), repr(opts))
        if key not in self._task_keys:  # the tasks' data read and checked once, not a checkpoint
            self._task_keys[key] = task_key(tasks, check_tasks(tasks, opts), opts)
        spec = JobSpec(index=index, label=label, model=model, tasks=tuple(tasks),
                       task_key=self._task_keys[key], options=opts, batch_size="auto",
                       output_root=str(output_root), log_dir=str(self.log_dir), cache_dir=None, done=frozenset(),
                       env=((DATA_ENV, str(data_root().resolve())),), threads=max(1, int(self.entry.cpus_per_job)),
                       meta=tuple((k, str(v)) for k, v in (meta or {}).items()))
        self.queue.put(spec)
        return index

    def wait(self, index: int) -> JobResult:
        with self._changed:
            while index not in self._results and self._stopped is None:
                self._changed.wait()
            if index in self._results:
                return self._results[index]
            return JobResult(index, self._labels[index], Status.FAILED, reason=self._stopped or "")

    def close(self, interrupted: bool = False) -> None:
        """No more jobs; wait for those submitted (unless ``interrupted``) and stop the workers."""
        self.queue.close()
        if not interrupted:
            self._thread.join()
        self.executor.close(interrupted=interrupted or self._thread.is_alive())
        shutil.rmtree(self.log_dir, ignore_errors=True)


class StageWatcher:
    """Submits each checkpoint of a training stage's folder once its manifest is written,
    while the stage trains; ``finish`` submits any the last look missed and returns
    checkpoint -> job number."""

    def __init__(self, folder: Path, submit: Callable[[Path, dict], int]):
        self.folder, self.submit = folder, submit
        self.jobs: dict[Path, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="aimed-stage-watch", daemon=True)

    def __enter__(self) -> "StageWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            self.look()

    def look(self, folders: Optional[list[Path]] = None) -> None:
        with self._lock:  # the watching thread and finish() never submit a checkpoint twice
            candidates = folders if folders is not None else sorted(self.folder.glob("checkpoint-*"))
            for ckpt in map(lambda p: Path(p).resolve(), candidates):
                manifest = ckpt / MANIFEST
                if ckpt in self.jobs or not manifest.is_file():
                    continue
                try:
                    data = json.loads(manifest.read_text(encoding="utf-8"))
                except (OSError, ValueError):  # written through a swap, so only a folder not ours
                    continue
                self.jobs[ckpt] = self.submit(ckpt, data)

    def finish(self, checkpoints: list[Path]) -> dict[Path, int]:
        self.__exit__()
        self.look(checkpoints)
        return self.jobs


def checkpoint_model(folder: Path, manifest: dict) -> ModelArgs:
    """What to load to score a checkpoint: its folder, or an adapter on the folder it applies to."""
    config = manifest.get("config") or {}
    adapter = bool(manifest.get("adapter"))
    return ModelArgs(model=str(manifest["base_folder"]) if adapter else str(folder),
                     lora_model=[str(folder)] if adapter else [],
                     template_name=str(manifest.get("template_name") or "raw"),
                     dtype=str(config.get("dtype", "auto")), only_cpu=bool(config.get("only_cpu", False)))


def scores_line(result: JobResult) -> str:
    """``demo/score=0.0499, demo_mcq/acc=0.0833``: each task's main metric, from results.json."""
    results = result.results or {}
    parts = []
    for task, config in (results.get("configs") or {}).items():
        main = config.get("primary_metric") or (config.get("metrics") or [None])[0]
        value = (results.get("results") or {}).get(task, {}).get(f"{main},none")
        if isinstance(value, (int, float)):
            parts.append(f"{task}/{main}={value:.4f}")
    return ", ".join(parts)


def say_result(prefix: str, result: JobResult) -> None:
    if result.status is Status.FAILED:
        write(f"aimed-eval: warning: {prefix}: scoring failed ({result.reason}); the gate goes on without it",
              err=True)
    else:
        scores = scores_line(result)
        write(f"{prefix}: scored" + (f": {scores}" if scores else "") + f"  (run {result.run_dir})")
