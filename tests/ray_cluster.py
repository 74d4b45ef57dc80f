"""A throwaway Ray cluster for the tests: ``ray start --head --block`` on 127.0.0.1 with two
CPUs (two worker processes), in its own process group and temp folder, stopped by
signalling that group (never ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def ray_env(**extra) -> dict:
    """Ray binds 127.0.0.1 (not the machine's address), reports nothing home, stops without
    its 30 s drain, and runs without token authentication whatever token ~/.ray holds (the
    cluster is the test's own, on loopback)."""
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_AUTH_MODE": "disabled", "AIMED_DB_WAIT_S": "10",
            **extra}


def need_ray():
    """ray, or a skip where it is not installed; in CI (``CI`` set) a missing ray fails."""
    if os.environ.get("CI"):
        import ray

        return ray
    return pytest.importorskip("ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ray_cluster(cpus: int = 2) -> Iterator[str]:
    """Yields the head's address, ``127.0.0.1:PORT``."""
    need_ray()
    temp = Path(tempfile.mkdtemp(prefix="aimed-ray-", dir="/tmp"))  # short: Ray's socket paths are limited
    port = free_port()
    argv = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address",
            "127.0.0.1", "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard=false",
            "--disable-usage-stats", "--temp-dir", str(temp), "--object-store-memory", str(100 * 1024 * 1024)]
    log = (temp / "start.log").open("w")
    head = subprocess.Popen(argv, env=ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            assert head.poll() is None, (temp / "start.log").read_text()
            assert time.time() < deadline, "the Ray head did not start in 120 s"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)
            head.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever its children left
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
