"""`aimed-eval sweep` on the local pool and on Ray with one and two workers (issue 17).

Builds 8 tiny Llama checkpoints (random weights, each its own seed; a tokenizer trained on
the demo questions), then times, each as a subprocess with no response cache and a fresh
run folder and index, as a user would run it:

- local: ``aimed-eval sweep --models DIR --tasks demo`` (the local pool, 2 workers, its
  processes spawned for the sweep);
- ray x1: the same with ``--executor ray --address`` on a ``ray start --head --num-cpus 1``
  cluster (one job at a time);
- ray x2: on a ``--num-cpus 2`` cluster (two jobs at once).

Each cluster is started on 127.0.0.1 for its measurement (not timed: its start-up, until
a first task has run, is printed apart), in its own process group and temp folder, and
stopped by that group. The sweep's wall time includes starting the driver, joining the
cluster and each worker's first imports (on tiny checkpoints, most of a job: scoring one
takes a few tenths of a second). Each executor runs ``--rounds`` times, in turn, each
round starting with another, so a busy spell of a shared machine does not land on one of
them. Prints the median wall times, their ratios to the local pool's, the overlap (the
jobs' own seconds added up over the wall time: 2 when two jobs were busy all along),
every round, and the load average before and after.

    python benchmarks/sweep_bench.py [--checkpoints 8] [--tasks demo] [--limit N] [--rounds 3] [--work DIR]
        [--hidden 64 --layers 2]   # larger: more scoring a job, less of it start-up
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "aimed.harness.cli"]
# Ray on 127.0.0.1 (not the machine's address), reporting nothing home, stopping without its 30 s drain,
# without token authentication (the clusters are the benchmark's own, on loopback)
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
       "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_AUTH_MODE": "disabled"}


def build_checkpoints(folder: Path, n: int, hidden: int = 64, layers: int = 2) -> Path:
    from aimed.harness.tinymodel import build_tiny_model

    with (REPO / "tasks" / "demo_data" / "demo_mcq.csv").open(encoding="utf-8-sig", newline="") as f:
        texts = [row["Question"] + "\n" + row["Options"] + "\n答案：" + row["Answer"] for row in csv.DictReader(f)]
    for seed in range(n):
        out = folder / f"checkpoint-{seed + 1}"
        if not (out / "config.json").exists():
            build_tiny_model(out, texts, arch="llama", seed=seed, hidden_size=hidden, layers=layers)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """``ray start --head --block`` with ``cpus`` CPUs on 127.0.0.1; stopped by its group."""

    def __init__(self, cpus: int):
        self.temp = Path(tempfile.mkdtemp(prefix="aimed-ray-", dir="/tmp"))
        self.port = _free_port()
        argv = [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address",
                "127.0.0.1", "--port", str(self.port), "--num-cpus", str(cpus), "--include-dashboard=false",
                "--disable-usage-stats", "--temp-dir", str(self.temp), "--object-store-memory", str(100 << 20)]
        started = time.perf_counter()
        self.log = (self.temp / "start.log").open("w")
        self.proc = subprocess.Popen(argv, env=ENV, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit((self.temp / "start.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        self.address = f"127.0.0.1:{self.port}"
        ready = ("import ray; ray.init(address='%s', log_to_driver=False, logging_level='ERROR'); "
                 "ray.get(ray.remote(num_cpus=1)(lambda: 1).remote())" % self.address)
        subprocess.run([sys.executable, "-c", ready], env=ENV, check=True, timeout=300)  # a task ran: it is up
        self.start_seconds = time.perf_counter() - started

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=60)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


def sweep(models: Path, out: Path, tasks: str, limit: int | None, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, the jobs' seconds added up, from the sweep's table)."""
    argv = [*CLI, "sweep", "--models", str(models), "--tasks", tasks, "--output_dir", str(out), "--no_cache",
            "--quiet", *(["--limit", str(limit)] if limit else []), *extra]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run folder and index: nothing skipped
    started = time.perf_counter()
    done = subprocess.run(argv, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}")
    lines = done.stdout.strip().splitlines()
    job_seconds = sum(float(line.split()[1]) for line in lines[2:] if line.split()[-1] == "scored")
    verdict = next(line for line in lines if " checkpoint(s): " in line)
    print(f"  {verdict}; jobs {job_seconds:.1f} s added up", flush=True)
    return seconds, job_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=int, default=8)
    ap.add_argument("--tasks", default="demo")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=64, help="the checkpoints' hidden size (64: tinymodel's)")
    ap.add_argument("--layers", type=int, default=2, help="their layers (2: tinymodel's)")
    ap.add_argument("--rounds", type=int, default=3, help="each executor this many times, in turn; the median counts")
    ap.add_argument("--work", type=Path, default=None, help="folder for the checkpoints and runs (default: a temp one)")
    ns = ap.parse_args()
    work = ns.work or Path(tempfile.mkdtemp(prefix="aimed-sweep-bench-"))
    models = build_checkpoints(work / f"models-{ns.hidden}x{ns.layers}", ns.checkpoints, ns.hidden, ns.layers)
    limit = f" --limit {ns.limit}" if ns.limit else ""
    print(f"{ns.checkpoints} checkpoints (hidden {ns.hidden}, {ns.layers} layers) x --tasks {ns.tasks}{limit}; "
          f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()[0]:.2f}", flush=True)
    local = "local pool (2 workers)"
    names = (local, "ray, 1 worker", "ray, 2 workers")
    walls: dict[str, list[float]] = {n: [] for n in names}
    busy: dict[str, list[float]] = {n: [] for n in names}

    def timed(name: str, result: tuple[float, float]) -> None:
        walls[name].append(result[0])
        busy[name].append(result[1])

    for r in range(ns.rounds):
        for name in names[r % 3:] + names[:r % 3]:  # each round starts with another executor
            if name == local:
                timed(local, sweep(models, work / f"local-{r}", ns.tasks, ns.limit, []))
                continue
            cpus = 1 if name == names[1] else 2
            cluster = Cluster(cpus)
            try:
                print(f"ray head with --num-cpus {cpus} up (a first task ran) in {cluster.start_seconds:.1f} s",
                      flush=True)
                timed(name, sweep(models, work / f"ray{cpus}-{r}", ns.tasks, ns.limit,
                                  ["--executor", "ray", "--address", cluster.address]))
            finally:
                cluster.stop()
    median = {n: statistics.median(walls[n]) for n in names}
    print(f"\n{'executor':22}  {'median s':>8}  {'vs local':>8}  {'overlap':>7}  every round (s)")
    for n in names:  # overlap: the jobs' seconds added up over the wall time (2: two jobs busy all along)
        overlap = statistics.median(b / w for b, w in zip(busy[n], walls[n]))
        print(f"{n:22}  {median[n]:8.1f}  {median[n] / median[local]:7.2f}x  {overlap:7.2f}  "
              + ", ".join(f"{t:.1f}" for t in walls[n]))
    one, two = median[names[1]], median[names[2]]
    print(f"ray: 2 workers take {two / one:.2f}x the time of 1 (speed-up {one / two:.2f}x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if ns.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
