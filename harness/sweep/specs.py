"""From what the user asked to the jobs: tasks checked once in the driver, one
:class:`~.jobs.JobSpec` a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..models.args import ModelArgs
from ..runner import RunOptions, check_options_apply, fewshot_pool
from ..taskregistry import DATA_ENV, Task, data_root, resolve_tasks
from .jobs import JobSpec
from .plan import Checkpoint
from .skip import task_key


def check_tasks(names: list[str], opts: RunOptions) -> list[Task]:
    """The sweep's tasks, their data read and the options checked against them here, once:
    a mistake every job would make is one line, not a table of identical failures. (The
    same checks as ``evaluate.iter_runs`` makes before a run.)"""
    tasks = resolve_tasks(names)
    check_options_apply(tasks, opts)
    for task in tasks:  # as runner.build_requests checks them, before any worker starts
        task.samples()
        fewshot_pool(task, opts)
    return tasks


def build_specs(checkpoints: list[Checkpoint], names: list[str], tasks: list[Task], opts: RunOptions,
                model: ModelArgs, *, batch_size: str, output_root: Path, log_dir: Path,
                cache_dir: Optional[Path], done: frozenset[str], threads: int) -> list[JobSpec]:
    """One job a checkpoint; ``model`` holds the sweep's model flags (its ``model`` is
    replaced by each checkpoint's folder)."""
    from dataclasses import replace

    key = task_key(names, tasks, opts)
    env = ((DATA_ENV, str(data_root().resolve())),)
    return [JobSpec(index=i, label=c.label, model=replace(model, model=str(c.path)), tasks=tuple(names),
                    task_key=key, options=opts, batch_size=batch_size, output_root=str(output_root),
                    log_dir=str(log_dir), cache_dir=str(cache_dir) if cache_dir else None, done=done,
                    env=env, threads=threads)
            for i, c in enumerate(checkpoints)]


def local_threads(cpus_per_job: Optional[float], workers: int) -> int:
    """torch threads a job of the local pool: ``--cpus_per_job``, else the machine's CPUs
    shared among the workers."""
    if cpus_per_job:
        return max(1, int(cpus_per_job))
    return max(1, (os.cpu_count() or 1) // max(1, workers))
