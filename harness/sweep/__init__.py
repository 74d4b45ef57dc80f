"""``aimed-eval sweep``: score many checkpoints as independent jobs, on a local process pool
or a Ray cluster, skipping those the results index already holds.

- ``plan``: ``--models`` (folders, globs, list files) expanded into checkpoint folders.
- ``skip``: what the index already holds (fingerprint × task × data hash, and the options).
- ``jobs``: one job, one checkpoint, run in a worker; idempotent under retries.
- ``queue``: the jobs an executor runs, all at once (a sweep) or as they come (a pipeline).
- ``specs``: the tasks checked once and the jobs built.
- ``local`` / ``ray_executor``: the two executors (``ray`` imported only for the second).
- ``driver``: dispatch, record in the index (the driver alone writes it), progress.
- ``report``: the final table.

docs/sweep.md is the user's guide.
"""

from .driver import Executor, SweepOutcome, record_result, run_sweep
from .jobs import JobResult, JobSpec, Status, run_job
from .local import LocalExecutor
from .plan import Checkpoint, LeftOut, find_checkpoints
from .queue import JobQueue
from .report import failure_line, table, verdict
from .skip import scored_fingerprints
from .specs import build_specs, check_tasks

__all__ = ["Checkpoint", "Executor", "JobQueue", "JobResult", "JobSpec", "LeftOut", "LocalExecutor", "Status", "SweepOutcome",
           "build_specs", "check_tasks", "failure_line", "find_checkpoints", "record_result", "run_job", "run_sweep",
           "scored_fingerprints", "table", "verdict"]
