"""Data-parallel scoring: `accelerate launch` runs 2 CPU processes (gloo) that each score a
shard; rank 0 alone writes the run folder and the index record, and the merged results
equal the single-process run's."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

TASKS = "demo,cmexam"  # multiple choice (loglikelihood), generation, and a real CMExam slice
LIMIT = "40"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def _samples(run_dir: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def _assert_close(a, b, path="") -> None:
    """Equal, numbers within 1e-6 (batches differ between the runs, so padding does too)."""
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        assert a == b, path
    elif isinstance(a, (int, float)):
        assert isinstance(b, (int, float)) and b == pytest.approx(a, abs=1e-6, nan_ok=True), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    else:
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")


def test_two_processes_equal_one(cli, tiny_llama, data_dir, tmp_path):
    common = ["run", "--model", str(tiny_llama), "--tasks", TASKS, "--limit", LIMIT, "--only_cpu",
              "--dtype", "float32", "--batch_size", "4", "--quiet"]
    code, _, err = cli(*common, "--output_dir", tmp_path / "single", "--no_index", "--no_cache")
    assert code == 0, err

    env = {**os.environ, "OMP_NUM_THREADS": "1", "AIMED_DATA": str(data_dir), "PYTHONUNBUFFERED": "1"}
    env.pop("AIMED_DB", None)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "aimed.harness.cli"]
    db = tmp_path / "index.sqlite"
    cache = tmp_path / "cache"
    proc = subprocess.run([*launch, *common, "--output_dir", str(tmp_path / "dp"), "--db", str(db),
                           "--cache_dir", str(cache)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run folder:") == 1  # rank 0 alone prints and records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "dp", "index.sqlite", "single"]  # nothing stray

    single, dp = _results(tmp_path / "single"), _results(tmp_path / "dp")
    assert dp["aimed"]["timings"]["processes"] == 2 and single["aimed"]["timings"]["processes"] == 1
    assert dp["aimed"]["model"]["fingerprint"] == single["aimed"]["model"]["fingerprint"]
    for task, n in (("demo_mcq", 24), ("demo_medterm", 16), ("cmexam", 40)):  # each process scored half
        assert dp["aimed"]["timings"][task]["computed_by_process"] == [n // 2, n // 2], task
    _assert_close(single["results"], dp["results"], "results")
    _assert_close(single["n-samples"], dp["n-samples"], "n-samples")
    _assert_close(single["aimed"]["categories"], dp["aimed"]["categories"], "categories")
    for task in ("demo_mcq", "demo_medterm", "cmexam"):
        a, b = _samples(tmp_path / "single", task), _samples(tmp_path / "dp", task)
        assert [r["doc_id"] for r in b] == list(range(len(a)))  # the original order
        assert [r["filtered_resps"] for r in a] == [r["filtered_resps"] for r in b], task  # same choices/texts
        for ra, rb in zip(a, b):
            _assert_close(ra, rb, f"{task}[{ra['doc_id']}]")
    assert len(_samples(tmp_path / "dp", "cmexam")) == int(LIMIT)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1

    # Each process committed its own shard to the shared response cache: a rerun computes nothing.
    code, _, err = cli(*common, "--output_dir", tmp_path / "rerun", "--no_index", "--cache_dir", cache)
    assert code == 0, err
    rerun = _results(tmp_path / "rerun")
    assert all(t["computed"] == 0 for k, t in rerun["aimed"]["timings"].items() if isinstance(t, dict))
    _assert_close(dp["results"], rerun["results"], "rerun")
