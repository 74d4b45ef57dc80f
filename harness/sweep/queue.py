"""The jobs an executor runs, as they become known.

``aimed-eval sweep`` knows every job before it starts (a queue filled and closed at
once); ``aimed-eval pipeline`` learns of a job each time a stage saves a checkpoint, while
the executor is already scoring the ones before it. The executors read both the same way:
they wait for new jobs only when they have nothing running, and stop once the queue is
closed and every job has reported.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Iterable, Optional, Union

from .jobs import JobSpec

POLL_S = 0.2  # how often an executor with jobs running looks for new ones


class JobQueue:
    def __init__(self, specs: Iterable[JobSpec] = ()):
        self._jobs: deque[JobSpec] = deque(specs)
        self._closed = False
        self._changed = threading.Condition()

    @classmethod
    def of(cls, specs: Iterable[JobSpec]) -> "JobQueue":
        """Every job at once: the sweep's queue."""
        queue = cls(specs)
        queue.close()
        return queue

    def put(self, spec: JobSpec) -> None:
        with self._changed:
            if self._closed:
                raise RuntimeError("a job was put into a closed queue")
            self._jobs.append(spec)
            self._changed.notify_all()

    def close(self) -> None:
        """No more jobs will come; the executor finishes those it has and returns."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self, wait: bool) -> Optional[list[JobSpec]]:
        """The jobs put since the last take; ``[]`` when there are none and ``wait`` is
        false; None once the queue is closed and empty. ``wait``: block until a job comes or
        the queue closes."""
        with self._changed:
            while wait and not self._jobs and not self._closed:
                self._changed.wait()
            if not self._jobs:
                return None if self._closed else []
            taken = list(self._jobs)
            self._jobs.clear()
            return taken


def as_queue(jobs: Union[JobQueue, Iterable[JobSpec]]) -> JobQueue:
    return jobs if isinstance(jobs, JobQueue) else JobQueue.of(jobs)
