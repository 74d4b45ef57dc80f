"""One sweep job: score one checkpoint on all the sweep's tasks, in a worker process.

A job is a checkpoint, not a (checkpoint, task) pair: loading the model is most of a
job's cost on real checkpoints, so every task is scored on one load, into one run folder
(group scores included), exactly what ``aimed-eval run --model CKPT --tasks T`` writes.

:func:`run_job` runs in the worker (a process of the local pool, or a Ray task) and never
raises for a job that went wrong: it returns a :class:`JobResult` saying why, so one
failing checkpoint never stops the others and a deterministic failure (a checkpoint that
does not load) is not retried. Only a worker that dies (killed, out of memory) is
retried, by the executor.

**The skip check runs here, not in the driver.** A checkpoint's fingerprint covers the
dtype that ``--dtype auto`` resolves to on the device that scores it (bf16/fp16 on a GPU,
fp32 on a CPU), and the driver's machine need not have the workers' GPUs; the worker
builds the backend without loading weights (``HFBackend`` reads only the folders, device
and dtype) and hashes the files, in parallel across workers and remembered in the
response cache, then compares with the fingerprints the driver read from the index.

**Idempotent under retries.** The run folder's name is fixed by the checkpoint, its
fingerprint and the sweep's tasks and options (``<label>-<hash>``), so a retried job
writes the same folder: an attempt killed mid-run left no folder (runs are written whole,
through a swap) and the retry scores again, with every answer the killed attempt had
cached; an attempt killed after writing its folder but before reporting left a complete
folder, which the retry returns as it is (same run id). The driver alone records results
in the index, once a job reports, so no attempt can record a run twice.

Each attempt appends ``start PID HOST`` (and ``end PID`` when it finishes) to
``<sweep folder>/<job>.log``: its number of starts is the attempt number, and it tells an
operator which process scores which checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..models.args import ModelArgs
from ..runner import RunOptions


class Status(str, Enum):
    SCORED = "scored"
    SKIPPED = "skipped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to score one checkpoint; paths are absolute (a Ray worker's
    current folder is not the driver's)."""

    index: int
    label: str
    model: ModelArgs  # the checkpoint folder and the sweep's model flags
    tasks: tuple[str, ...]  # as the user named them: groups keep their group scores
    task_key: str  # skip.task_key: what the sweep asks, in the run folder's name
    options: RunOptions
    batch_size: str
    output_root: str
    log_dir: str
    cache_dir: Optional[str]
    done: frozenset[str]  # fingerprints already scored on these tasks (skip.scored_fingerprints)
    env: tuple[tuple[str, str], ...] = ()  # AIMED_DATA and the like, for workers started elsewhere
    threads: int = 1  # torch's intra-op threads
    meta: tuple[tuple[str, str], ...] = ()  # run metadata (a pipeline's stage and base model)


@dataclass
class JobResult:
    index: int
    label: str
    status: Status
    reason: str = ""  # why it failed, or a note on how it was scored
    run_dir: Optional[str] = None
    results: Optional[dict] = None  # results.json, for the driver to record
    fingerprint: Optional[str] = None
    seconds: float = 0.0
    attempt: int = 1
    warnings: list[str] = field(default_factory=list)


def run_job(spec: JobSpec) -> JobResult:
    """Score (or skip) one checkpoint; every outcome is a JobResult."""
    started = time.perf_counter()
    attempt = _log(spec, f"start {os.getpid()} {socket.gethostname()}")
    captured = io.StringIO()
    try:
        with redirect_stdout(captured), redirect_stderr(captured):  # the driver's bar owns the terminal
            result = _score(spec)
    except UserError as exc:
        result = _failed(spec, exc.message)
    except MemoryError:
        result = _failed(spec, "out of memory while scoring; give each job more memory (fewer jobs a machine)")
    except Exception as exc:  # noqa: BLE001 - one job's fault must not end the others
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if "out of memory" in first.lower():
            result = _failed(spec, f"out of memory on {spec.model.device} ({first}); lower --batch_size or "
                                   "give each job a larger GPU")
        else:
            result = _failed(spec, f"{type(exc).__name__}: {first} (unexpected: please report it)")
    _release_memory()
    result.seconds = round(time.perf_counter() - started, 2)
    result.attempt = attempt
    result.warnings = [line.strip() for line in captured.getvalue().splitlines() if "warning:" in line][:5]
    _log(spec, f"end {os.getpid()}")
    return result


def _failed(spec: JobSpec, reason: str) -> JobResult:
    return JobResult(spec.index, spec.label, Status.FAILED, reason=reason)


def _score(spec: JobSpec) -> JobResult:
    os.environ.update(dict(spec.env))
    _quiet_libraries(spec.threads)
    from ..cache import NoCache, ResponseCache
    from ..evaluate import evaluate, model_fingerprint
    from ..models.adapters import plan_runs
    from ..models.backend import BackendOptions, build_backend

    args = plan_runs(spec.model)[0]  # an adapter folder: its base with it applied
    backend = build_backend("hf", BackendOptions(batch_size=spec.batch_size), [args])  # no weights loaded yet
    cache = ResponseCache(Path(spec.cache_dir)) if spec.cache_dir else NoCache()
    try:
        fingerprint = model_fingerprint(backend, args, cache)
    finally:
        cache.close()
    if fingerprint in spec.done:
        return JobResult(spec.index, spec.label, Status.SKIPPED, reason="already in the index",
                         fingerprint=fingerprint)
    run_dir = Path(spec.output_root) / run_folder_name(spec, fingerprint)
    earlier = _complete_run(run_dir, fingerprint)
    if earlier is not None:
        return JobResult(spec.index, spec.label, Status.SCORED, reason="its run folder was complete: reused",
                         run_dir=str(run_dir), results=earlier, fingerprint=fingerprint)
    run = evaluate(args, list(spec.tasks), spec.options, output_dir=run_dir, cache_dir=_path(spec.cache_dir),
                   use_cache=spec.cache_dir is not None, batch_size=spec.batch_size, overwrite=True, backend=backend,
                   meta=dict(spec.meta) or None)
    return JobResult(spec.index, spec.label, Status.SCORED, run_dir=str(run.run_dir), results=run.results,
                     fingerprint=fingerprint)


def run_folder_name(spec: JobSpec, fingerprint: str) -> str:
    """``<label>-<8 hex>``: the hash covers the checkpoint's path and fingerprint and the
    sweep's tasks and options, so the same job always writes the same folder and no two
    jobs share one."""
    digest = hashlib.sha256("\x1f".join((spec.model.model, fingerprint, spec.task_key)).encode()).hexdigest()
    safe = re.sub(r"[^\w.+-]+", "_", spec.label.replace("/", "_")).strip("._") or "checkpoint"
    return f"{safe[:80]}-{digest[:8]}"


def _complete_run(run_dir: Path, fingerprint: str) -> Optional[dict]:
    """The results of a run folder this job wrote before, or None: an attempt killed after
    writing it, a sweep whose index was removed or that ran with ``--no_index``."""
    from ..owned import kind_of

    if not (run_dir / "results.json").is_file() or kind_of(run_dir) != "run":
        return None
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = ((results.get("aimed") or {}).get("model") or {}) if isinstance(results, dict) else {}
    return results if model.get("fingerprint") == fingerprint else None


def _quiet_libraries(threads: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if threads > 0:
        torch.set_num_threads(threads)


def _release_memory() -> None:
    """A worker scores job after job: the last model's memory (and a GPU's cached blocks,
    after an out-of-memory error above all) is given back before the next one loads."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _path(text: Optional[str]) -> Optional[Path]:
    return Path(text) if text else None


def job_log(log_dir: str | Path, index: int) -> Path:
    return Path(log_dir) / f"{index}.log"


def _log(spec: JobSpec, line: str) -> int:
    """Append ``line`` to the job's log; returns how many attempts have started."""
    path = job_log(spec.log_dir, spec.index)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return attempts_started(path)
    except OSError:  # a worker that cannot write there still scores
        return 1


def died_in(attempts: int) -> str:
    """``its worker process died in each of 3 attempts`` (or ``in its one attempt``)."""
    return "its worker process died " + ("in its one attempt" if attempts == 1 else f"in each of {attempts} attempts")


def attempts_started(path: Path) -> int:
    try:
        return max(1, sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("start ")))
    except OSError:
        return 1
