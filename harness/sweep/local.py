"""The local executor: a pool of worker processes on this machine (the default).

Workers are started with ``spawn`` (torch and ``fork`` do not mix) and reused from job to
job, so each pays for importing torch once. At most ``workers`` jobs are in flight, so a
job handed to the pool is a job running.

A worker that dies (killed, or by the kernel's out-of-memory killer) breaks the whole
``concurrent.futures`` pool: every job then running is lost, not only the one whose
process died, and the pool cannot tell which that was. Each lost job is put back and
counts an attempt; a new pool takes over. A job that has used up its attempts fails with
one line, and the others go on.

GPUs: with ``gpus_per_job`` > 0 each slot of the pool is given one visible GPU
(``cuda:K``; two slots share one with ``gpus_per_job`` 0.5), and there are as many slots
as the GPUs hold.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Callable, Optional, Union

from ..errors import UserError
from .jobs import JobResult, JobSpec, Status, died_in, run_job
from .queue import POLL_S, JobQueue, as_queue

Report = Callable[[JobResult], None]


def gpu_slots(gpus_per_job: float) -> list[Optional[str]]:
    """One device a slot of the pool: ``cuda:K`` for each share of a visible GPU."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise UserError(f"--gpus_per_job {gpus_per_job:g}: no GPU is visible on this machine; drop it to score "
                        "on the CPU, or use --executor ray with a cluster that has GPUs")
    shares = int(count / gpus_per_job + 1e-9)
    return [f"cuda:{int(s * gpus_per_job + 1e-9)}" for s in range(shares)]


class LocalExecutor:
    """``workers`` processes; ``devices`` (one a slot, None: the job's own ``--device``)."""

    def __init__(self, workers: int, retries: int, devices: Optional[list[Optional[str]]] = None):
        self.devices = devices or [None] * workers
        self.workers = min(workers, len(self.devices))
        self.retries = retries
        self._pool: Optional[ProcessPoolExecutor] = None

    def describe(self) -> str:
        return f"local pool of {self.workers} worker process(es)"

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, jobs: Union[JobQueue, list[JobSpec]], report: Report) -> None:
        source = as_queue(jobs)
        pending: deque[JobSpec] = deque()
        attempts: dict[int, int] = {}
        free = list(range(self.workers))[::-1]
        running: dict[Future, tuple[JobSpec, int]] = {}
        self._pool = self._new_pool()
        while True:
            new = source.take(wait=not (pending or running))  # idle: wait for the next job
            if new is None and not (pending or running):
                return
            pending.extend(new or ())
            while pending and free:
                spec, slot = pending.popleft(), free.pop()
                attempts[spec.index] = attempts.get(spec.index, 0) + 1
                device = self.devices[slot]
                job = replace(spec, model=replace(spec.model, device=device)) if device else spec
                running[self._pool.submit(run_job, job)] = (spec, slot)
            if not running:
                continue
            # an open queue may get jobs while these run: look again every POLL_S
            finished, _ = wait(running, timeout=None if source.closed else POLL_S, return_when=FIRST_COMPLETED)
            broken = False
            for future in finished:
                spec, slot = running.pop(future)
                free.append(slot)
                try:
                    report(future.result())
                except BrokenProcessPool:
                    broken = True
                    self._lost(spec, attempts, pending, report)
                except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be sent back
                    report(JobResult(spec.index, spec.label, Status.FAILED,
                                     reason=f"{type(exc).__name__}: {str(exc)[:200]}", attempt=attempts[spec.index]))
            if broken:  # the pool is unusable: every job still in it is lost too
                for future, (spec, slot) in list(running.items()):
                    future.cancel()
                    free.append(slot)
                    self._lost(spec, attempts, pending, report)
                running.clear()
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = self._new_pool()

    def _lost(self, spec: JobSpec, attempts: dict[int, int], pending: deque, report: Report) -> None:
        if attempts[spec.index] <= self.retries:
            pending.appendleft(spec)
            return
        report(JobResult(spec.index, spec.label, Status.FAILED, attempt=attempts[spec.index],
                         reason=f"{died_in(attempts[spec.index])} (killed, or out of memory); give each job more "
                                "memory (fewer --workers) or raise --retries"))

    def close(self, interrupted: bool = False) -> None:
        """Shut the pool down; ``interrupted`` (Ctrl-C, an error in the driver): its workers are
        terminated rather than waited for."""
        if self._pool is None:
            return
        if interrupted:  # concurrent.futures has no public way to stop a running job before 3.14
            for process in list(getattr(self._pool, "_processes", {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
