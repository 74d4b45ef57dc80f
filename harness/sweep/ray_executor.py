"""The Ray executor (``--executor ray``): each job a Ray task on a cluster.

``ray`` is imported only here and only for this executor; without it the sweep stops with
the install command. The driver connects with ``ray.init(address=...)``: the head node's
``HOST:PORT`` that ``ray start --head`` printed, ``auto`` (the cluster ``ray start``
started on this machine), or nothing (``RAY_ADDRESS``, else that cluster, else a Ray
instance of its own for this sweep, as ``ray.init()`` does).

An address that cannot be reached must not hang: ``ray.init`` waits minutes for a GCS that
is not there, printing as it goes. So the address is probed first, within
``connect_timeout`` seconds: a TCP connection, then the HTTP/2 handshake a Ray head's GCS
(a gRPC server) answers; a closed port, a filtered one or some other server there is one
line.

Each job is ``@ray.remote(num_cpus=..., num_gpus=..., max_retries=N)`` around the same
:func:`~.jobs.run_job` the local pool runs; resources that no node of the cluster has are
refused before anything is submitted (Ray would otherwise wait forever for them). Ray
retries a task whose worker died (killed, or stopped by its memory monitor) up to
``max_retries`` times; a job's own failures come back as results and are not retried.
Worker output is not streamed to the driver (``log_to_driver=False``): the driver's
progress bar and table are the sweep's output; the workers' logs stay in Ray's session
folder.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

from ..errors import UserError
from .jobs import JobResult, JobSpec, Status, attempts_started, died_in, job_log, run_job
from .queue import POLL_S, JobQueue, as_queue

INSTALL = 'pip install "aimed-eval[ray]"'
# the client's HTTP/2 connection preface and an empty SETTINGS frame: a gRPC server answers
# with a SETTINGS frame of its own (frame type 4 in the fourth byte of the header)
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray: the ray package is not installed; install it with {INSTALL}, "
                        "or drop --executor ray to use the local pool") from None
    return ray


def host_port(address: str, shown: str = "") -> Optional[tuple[str, int]]:
    """(host, port) of a head node's address; None for ``auto``/``local`` (Ray finds it)."""
    if address in ("auto", "local"):
        return None
    shown = shown or f"--address {address}"
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{shown}: give the head node's HOST:PORT, as `ray start --head` printed it "
                        "(e.g. 10.0.0.5:6379), or auto")
    return host, int(port)


def probe(address: str, timeout: float, shown: str = "") -> None:
    """A UserError unless a Ray head answers at ``address`` within ``timeout`` seconds;
    ``shown`` names it in messages (default ``--address ADDRESS``)."""
    shown = shown or f"--address {address}"
    where = host_port(address, shown)
    if where is None:
        return
    fix = (f"start one with `ray start --head --port {where[1]}` on {where[0]}, or check --address and that "
           "the port is open to this machine")
    try:
        with socket.create_connection(where, timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.timeout:
        raise UserError(f"{shown}: no answer within {timeout:g} s (--connect_timeout); {fix}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"{shown}: cannot reach a Ray cluster there ({reason}); {fix}") from None
    if len(head) < 9 or head[3] != 4:
        raise UserError(f"{shown}: something answers there, but not a Ray head node (its GCS port); "
                        "give the address `ray start --head` printed")


class RayExecutor:
    def __init__(self, address: Optional[str], cpus_per_job: float, gpus_per_job: float, retries: int,
                 connect_timeout: float):
        self.address, self.cpus, self.gpus = address, cpus_per_job, gpus_per_job
        self.retries, self.timeout = retries, connect_timeout
        self._ray = None
        self._refs: dict = {}
        self._summary = ""

    def connect(self) -> None:
        ray = import_ray()
        if self.address:
            probe(self.address, self.timeout)
        elif os.environ.get("RAY_ADDRESS"):
            probe(os.environ["RAY_ADDRESS"], self.timeout, f"RAY_ADDRESS={os.environ['RAY_ADDRESS']}")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # bounds ray.init's own wait for the GCS (a head that answers but refuses us: a token, a version)
        os.environ.setdefault("RAY_py_gcs_connect_timeout_s", str(max(1, round(self.timeout))))
        with _native_stderr() as said:  # Ray's C++ core retries aloud on stderr, a line a second
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
                failure = None
            except Exception as exc:  # noqa: BLE001 - a version mismatch, a token, a missing extra: one line
                ray.shutdown()
                failure = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if failure is not None:
            raise UserError(_join_failure(self.address, failure, said()))
        sys.stderr.write(said())  # joined: whatever Ray had to say is shown after all
        self._ray = ray
        self._check_resources()

    def _check_resources(self) -> None:
        nodes = [n.get("Resources", {}) for n in self._ray.nodes() if n.get("Alive")]
        most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
        most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
        where = self.address if self.address not in (None, "auto") else self._ray.get_runtime_context().gcs_address
        self._summary = (f"Ray cluster at {where}: {len(nodes)} node(s), {sum(n.get('CPU', 0) for n in nodes):g} CPUs, "
                         f"{sum(n.get('GPU', 0) for n in nodes):g} GPUs")
        for flag, want, most, what in (("--cpus_per_job", self.cpus, most_cpus, "CPUs"),
                                       ("--gpus_per_job", self.gpus, most_gpus, "GPUs")):
            if want > most:
                self.close()
                raise UserError(f"{flag} {want:g}: no node of the Ray cluster at {where} has that many {what} (the "
                                f"most a node has: {most:g}), so the jobs would wait forever; lower it")

    def describe(self) -> str:
        return self._summary

    def run(self, jobs: Union[JobQueue, list[JobSpec]], report: Callable[[JobResult], None]) -> None:
        ray = self._ray
        remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                            retry_exceptions=False)(run_job)
        source = as_queue(jobs)
        self._refs = {}
        while True:
            new = source.take(wait=not self._refs)  # idle: wait for the next job
            if new is None and not self._refs:
                return
            self._refs.update({remote.remote(spec): spec for spec in new or ()})
            if not self._refs:
                continue
            try:  # an open queue may get jobs while these run: look again every POLL_S
                ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=None if source.closed else POLL_S)
            except Exception as exc:  # noqa: BLE001 - the cluster went away under the driver
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise UserError(f"lost the Ray cluster ({first}); rerun the sweep: what was recorded is "
                                "skipped") from None
            for ref in ready:
                spec = self._refs.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    attempts = attempts_started(job_log(spec.log_dir, spec.index))
                    result = JobResult(spec.index, spec.label, Status.FAILED, reason=failure_reason(exc, attempts),
                                       attempt=attempts)
                report(result)

    def close(self, interrupted: bool = False) -> None:
        if self._ray is None:
            return
        if interrupted:
            for ref in list(self._refs):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass
        self._refs = {}
        self._ray.shutdown()
        self._ray = None


@contextmanager
def _native_stderr() -> Iterator[Callable[[], str]]:
    """Hold what is written to file descriptor 2 (Ray's C++ logging too) while ``ray.init``
    runs; yields a function that returns it."""
    sys.stderr.flush()
    saved = os.dup(2)
    held = tempfile.TemporaryFile()
    os.dup2(held.fileno(), 2)
    text = ""
    try:
        yield lambda: text
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        held.seek(0)
        text = held.read().decode("utf-8", "replace")
        held.close()


def _join_failure(address: Optional[str], first: str, said: str) -> str:
    """The one line for a ``ray.init`` that failed, from its exception and what Ray logged."""
    shown = f"--address {address}" if address else "--executor ray"
    if "Could not find any running Ray instance" in first:
        return (f"{shown}: no running Ray cluster found on this machine; start one with `ray start --head`, or give "
                "the head node's --address HOST:PORT")
    if "InvalidAuthToken" in said or "Unauthenticated" in said:
        return (f"{shown}: the Ray cluster asks for its token (Ray's token authentication); set RAY_AUTH_MODE=token "
                "here, with the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token")
    return (f"{shown}: could not join the Ray cluster ({first}); check that it runs the same Ray and Python versions "
            "as this machine")


def failure_reason(exc: BaseException, attempts: int) -> str:
    """One line for a job Ray gave up on."""
    from ray import exceptions as rx

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    if isinstance(exc, rx.OutOfMemoryError):
        return (f"out of memory: Ray's memory monitor stopped its worker ({attempts} attempt(s)); give each job "
                "more memory: raise --cpus_per_job so fewer jobs share a node")
    if isinstance(exc, rx.WorkerCrashedError):
        return (f"{died_in(attempts)} (killed, or out of memory); give each job more memory (raise "
                "--cpus_per_job) or raise --retries")
    if isinstance(exc, rx.NodeDiedError):
        return f"the node running it left the cluster ({first})"
    if isinstance(exc, rx.TaskCancelledError):
        return "cancelled"
    if isinstance(exc, rx.RayTaskError):
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        last = (str(cause).strip().splitlines() or [""])[-1][:160]
        return f"{type(cause).__name__}: {last} (unexpected: please report it)"
    return f"{type(exc).__name__}: {first}"
