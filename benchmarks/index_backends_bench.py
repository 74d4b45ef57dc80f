"""The leaderboard and the dashboard on a team-sized index, on both backends (issue 18: goal
under 1 s for the leaderboard and under 2 s for the dashboard with 5,000 runs x 20 tasks).

Fills an SQLite file and a PostgreSQL database with the same synthetic index through the
index's own ``record`` (5,000 checkpoints of 4 base models over 5 stages, 20 tasks, three
metrics a task with standard errors and per-category rows), then times, median of
--repeat:
- ``query.leaderboard()`` in-process (the SQL and the assembly);
- ``aimed-eval leaderboard --db ...`` as a subprocess (wall clock, start-up included);
- the dashboard's leaderboard page through streamlit's AppTest, cold (caches cleared)
  and warm (``benchmarks/dashboard_bench.py``'s timing).

The PostgreSQL server is a throwaway one (tests/pg_server.py) unless --pg names one.

    python benchmarks/index_backends_bench.py [--runs 5000] [--tasks 20] [--repeat 5] [--pg URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
STAGES = ("base", "pt", "sft", "dpo", "ppo")
METRICS = ("acc", "set_f1", "no_answer")


def fill(db_ref, n_runs: int, n_tasks: int, seed: int = 0) -> None:
    from aimed.harness.index import connect, record

    rng = random.Random(seed)
    db = connect(db_ref)
    tasks = [f"task{t:02d}" for t in range(n_tasks)]
    try:
        for i in range(n_runs):
            run_id = f"{i:08x}{rng.getrandbits(64):016x}"
            base, stage = f"base{i % 4}", STAGES[(i // 4) % len(STAGES)]
            run = {"run_id": run_id, "run_dir": f"/runs/{run_id}", "date": 1.7e9 + i, "source": "aimed",
                   "model": f"/ckpt/{base}/{stage}/checkpoint-{i}", "checkpoint": f"{stage}/checkpoint-{i}",
                   "fingerprint": f"fp{i:06d}", "base_model": base, "stage": stage, "parent": None, "step": i,
                   "adapter": None, "tasks": "[]", "config": "{}"}
            scores, metas, cats = [], [], []
            for pos, task in enumerate(tasks):
                for metric in METRICS:
                    v = rng.random()
                    scores.append((run_id, task, metric, v, 0.01, 200, int(metric != "no_answer"), 0))
                metas.append((run_id, task, 1, "loglikelihood", f"h{task}", "s", "acc", 0, pos))
                cats.append((run_id, task, "department", "内科", "acc", rng.random(), 0.02, 50))
            record(db, run, scores, metas, cats)
    finally:
        db.close()


def median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, db_ref, n_runs: int, repeat: int) -> dict:
    from aimed.leaderboards import query
    from dashboard_bench import time_apptest

    in_process = median(lambda: query.leaderboard(str(db_ref)), repeat)
    cli = median(lambda: subprocess.run([sys.executable, "-m", "aimed.harness.cli", "leaderboard", "--db", str(db_ref)],
                                        check=True, capture_output=True), repeat)
    page = time_apptest(db_ref, repeat, n_runs)
    return {"backend": name, "leaderboard_query_s": in_process, "leaderboard_cli_s": cli,
            "dashboard_cold_s": statistics.median(page["cold"]), "dashboard_warm_s": statistics.median(page["warm"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pg", default=None, help="a PostgreSQL URL to fill (default: a throwaway server)")
    ns = ap.parse_args()
    import pg_server

    server = None if ns.pg else pg_server.start()
    rows = []
    try:
        pg_url = ns.pg or server.create_database("aimed_bench")
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_path = Path(tmp) / "index.sqlite"
            for name, ref in (("sqlite", sqlite_path), ("postgresql", pg_url)):
                t0 = time.perf_counter()
                fill(ref, ns.runs, ns.tasks)
                print(f"{name}: filled {ns.runs} runs x {ns.tasks} tasks in {time.perf_counter() - t0:.1f} s",
                      flush=True)
                rows.append(measure(name, ref, ns.runs, ns.repeat))
    finally:
        if server is not None:
            server.stop()
    print(f"{'backend':<11} {'query s':>8} {'CLI s':>7} {'dash cold s':>11} {'dash warm s':>11}")
    for r in rows:
        print(f"{r['backend']:<11} {r['leaderboard_query_s']:>8.3f} {r['leaderboard_cli_s']:>7.3f} "
              f"{r['dashboard_cold_s']:>11.3f} {r['dashboard_warm_s']:>11.3f}")
    ok = all(r["leaderboard_cli_s"] < 1.0 and r["dashboard_cold_s"] < 2.0 for r in rows)
    print("goal (leaderboard < 1 s, dashboard < 2 s):", "met" if ok else "missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
