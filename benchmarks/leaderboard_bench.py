"""How fast the leaderboard is with 500 runs x 10 tasks in the index (issue 3, Done-when 3).

Builds the synthetic index (``aimed.leaderboards.sample_index.build``: 500 real run
folders recorded through ``record_run``), then times:
- ``leaderboard()`` in-process (the SQL query and assembly; median of --repeat);
- ``aimed-eval leaderboard`` as a subprocess, wall clock from spawn to exit, for each
  output format and ``--progression`` (median of --repeat), and what part of it is the
  CLI's start-up alone (``aimed-eval --version``: Python plus the command modules).

    python benchmarks/leaderboard_bench.py [--runs 500] [--tasks 10] [--repeat 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def cli(*argv: str):
    exe = shutil.which("aimed-eval") or ""
    cmd = [exe, *argv] if exe else [sys.executable, "-m", "aimed.harness.cli", *argv]
    return lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="build the index here and keep it")
    ns = ap.parse_args()

    from aimed.leaderboards import query
    from aimed.leaderboards.sample_index import build

    work = ns.keep or Path(tempfile.mkdtemp(prefix="aimed-lb-bench-"))
    db = work / "aimed_index.sqlite"
    t = time.perf_counter()
    build(db, work / "runs", n_runs=ns.runs, n_tasks=ns.tasks)
    built = time.perf_counter() - t
    conn = query.open_index(db)
    n_runs, = conn.execute("SELECT count(*) FROM runs").fetchone()
    n_scores, = conn.execute("SELECT count(*) FROM scores").fetchone()
    n_cats, = conn.execute("SELECT count(*) FROM categories").fetchone()
    board = query.leaderboard(conn)
    print(f"index: {n_runs} runs, {len(board.rows)} checkpoints, {len(board.tasks)} columns "
          f"({ns.tasks} tasks + {len(board.groups)} groups), {n_scores} scores, {n_cats} category rows, "
          f"{db.stat().st_size / 1e6:.1f} MB; built in {built:.1f} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, Python {sys.version.split()[0]}")

    med, best = median_time(lambda: query.leaderboard(conn), ns.repeat * 3)
    print(f"leaderboard() query              median {med * 1000:7.1f} ms   best {best * 1000:7.1f} ms")
    med, best = median_time(lambda: query.leaderboard(query.open_index(db)), ns.repeat * 3)
    print(f"open_index() + leaderboard()     median {med * 1000:7.1f} ms   best {best * 1000:7.1f} ms")
    med, best = median_time(lambda: query.progression(conn), ns.repeat)
    print(f"progression()                    median {med * 1000:7.1f} ms   best {best * 1000:7.1f} ms")

    env_db = str(db)
    cases = [("aimed-eval --version (start-up only)", ("--version",))]
    cases += [(f"aimed-eval leaderboard --format {f}", ("leaderboard", "--db", env_db, "--format", f))
              for f in ("table", "markdown", "csv", "json")]
    cases += [("aimed-eval leaderboard --progression", ("leaderboard", "--db", env_db, "--progression")),
              ("aimed-eval leaderboard --stage sft --tasks cmexam", ("leaderboard", "--db", env_db, "--stage", "sft",
                                                                     "--tasks", "cmexam"))]
    # The floor: the same command with no other command module imported (what `aimed-eval
    # leaderboard` costs once the CLI imports only the command it runs).
    alone = ("import argparse, sys; from aimed.leaderboards import leaderboard_cmd as c; "
             "p = argparse.ArgumentParser(); c.add_parser(p.add_subparsers()); "
             "ns = p.parse_args(sys.argv[1:]); sys.exit(ns.func(ns))")
    floor = [sys.executable, "-c", alone, "leaderboard", "--db", env_db]
    cases.append(("leaderboard_cmd alone (no other commands)", None))
    cli(*cases[1][1])()  # warm the page cache once
    worst = 0.0
    for label, argv in cases:
        run = cli(*argv) if argv else (lambda: subprocess.run(floor, check=True, stdout=subprocess.DEVNULL))
        med, best = median_time(run, ns.repeat)
        if argv and argv[0] == "leaderboard":
            worst = max(worst, med)
        print(f"{label:<48} median {med:6.3f} s   best {best:6.3f} s")
    print(f"slowest `aimed-eval leaderboard` median: {worst:.3f} s (target: under 1 s)")
    conn.close()
    if not ns.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
