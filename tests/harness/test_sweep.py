"""``aimed-eval sweep``: many checkpoints as independent jobs, on the local pool and on a real
Ray cluster (``ray start --head`` on 127.0.0.1 with two CPUs, so two worker processes,
started once for the module and stopped at the end by its own process group).

Real numbers on tiny checkpoints: the sweep's runs equal ``aimed-eval run``'s; a rerun
skips everything; a checkpoint that fails to load fails alone; a worker SIGKILLed in the
middle of a job (found through the job's log, ``<sweep folder>/<job>.log``) is retried,
and the index ends with exactly one row a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_cluster import free_port, need_ray, ray_env
from ray_cluster import ray_cluster as start_ray_cluster

CLI = [sys.executable, "-m", "aimed.harness.cli"]
TASKS = ["--tasks", "demo", "--limit", "3"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_llama) -> Path:
    """A pipeline-like folder: three checkpoints of a stage (other weights each), a reward
    model the sweep leaves out, and nothing else."""
    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.mktemp("sweep-models") / "pipe"
    for step in (1, 2, 3):
        out = root / "sft" / f"checkpoint-{step}"
        shutil.copytree(tiny_llama, out)
        weights = load_file(out / "model.safetensors")
        torch.manual_seed(step)
        save_file({k: v + 0.01 * torch.randn_like(v) for k, v in weights.items()}, out / "model.safetensors")
    rm = root / "rm" / "checkpoint-1"
    shutil.copytree(tiny_llama, rm)
    (rm / "aimed_checkpoint.json").write_text(json.dumps({"stage": "rm"}), encoding="utf-8")
    return root


def _bad_checkpoint(tiny_llama: Path, out: Path) -> Path:
    shutil.copytree(tiny_llama, out)
    (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:1000])
    return out


def _rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT checkpoint, fingerprint, run_dir FROM runs ORDER BY checkpoint").fetchall()
    finally:
        con.close()


_env = ray_env


# ------------------------------------------------------------------------------ local pool
def test_local_sweep_scores_skips_and_fails_alone(cli, checkpoints, tiny_llama, tmp_path):
    bad = _bad_checkpoint(tiny_llama, tmp_path / "broken")
    out, cache = tmp_path / "runs", tmp_path / "cache"
    code, stdout, err = cli("sweep", "--models", checkpoints, bad, *TASKS, "--output_dir", out, "--cache_dir", cache,
                            "--quiet")
    assert code == 2, err
    assert err.strip().splitlines()[-1] == ("aimed-eval: error: sweep: 1 of 5 checkpoint(s) failed (broken); "
                                            "the table above says why")
    assert "Traceback" not in err
    table = {line.split()[0]: line for line in stdout.splitlines() if line.startswith(("sft/", "rm/", "broken"))}
    assert set(table) == {"sft/checkpoint-1", "sft/checkpoint-2", "sft/checkpoint-3", "rm/checkpoint-1", "broken"}
    assert "failed: " in table["broken"] and "not a readable safetensors file" in table["broken"]
    assert "skipped: a reward model" in table["rm/checkpoint-1"]
    rows = _rows(out / "aimed_index.sqlite")
    assert [r[0] for r in rows] == ["sft/checkpoint-1", "sft/checkpoint-2", "sft/checkpoint-3"]
    assert len({r[1] for r in rows}) == 3  # three fingerprints: other weights each
    assert not list(out.glob(".aimed-sweep-*")), "the job logs are removed"

    # the same numbers as `aimed-eval run` on that checkpoint
    ckpt1 = next(Path(r[2]) for r in rows if r[0] == "sft/checkpoint-1")
    code, _, err = cli("run", "--model", checkpoints / "sft" / "checkpoint-1", *TASKS, "--output_dir",
                       tmp_path / "single", "--no_index", "--no_cache", "--quiet")
    assert code == 0, err
    swept = json.loads((ckpt1 / "results.json").read_text(encoding="utf-8"))
    single = json.loads((tmp_path / "single" / "results.json").read_text(encoding="utf-8"))
    assert swept["results"] == single["results"]
    assert swept["aimed"]["model"]["fingerprint"] == single["aimed"]["model"]["fingerprint"]

    # rerun: every checkpoint is in the index, nothing is scored or recorded again
    code, stdout, err = cli("sweep", "--models", checkpoints, *TASKS, "--output_dir", out, "--cache_dir", cache,
                            "--quiet")
    assert code == 0, err
    assert stdout.count("skipped: already in the index") == 3
    assert "4 checkpoint(s): 0 scored, 4 skipped, 0 failed" in stdout
    assert _rows(out / "aimed_index.sqlite") == rows

    # the index lost: the complete run folders are recorded again as they are (same run ids)
    ids = sorted(json.loads((Path(r[2]) / "results.json").read_text(encoding="utf-8"))["aimed"]["run_id"] for r in rows)
    (out / "aimed_index.sqlite").unlink()
    code, stdout, err = cli("sweep", "--models", checkpoints / "sft", *TASKS, "--output_dir", out, "--cache_dir", cache,
                            "--quiet")
    assert code == 0, err
    assert stdout.count("scored (its run folder was complete: reused)") == 3
    con = sqlite3.connect(out / "aimed_index.sqlite")
    assert sorted(r[0] for r in con.execute("SELECT run_id FROM runs")) == ids
    con.close()

    # another limit is other work: scored again, into other run folders
    code, stdout, err = cli("sweep", "--models", checkpoints / "sft" / "checkpoint-1", "--tasks", "demo", "--limit",
                            "2", "--output_dir", out, "--cache_dir", cache, "--quiet")
    assert code == 0, err
    assert "1 scored" in stdout and len(_rows(out / "aimed_index.sqlite")) == 4


def test_sweep_into_a_postgresql_index(cli, checkpoints, tmp_path):
    """A team's index on PostgreSQL (a throwaway server): the driver records there, a rerun
    skips by it, and the password is never shown."""
    import pg_server

    if pg_server.available() is not None and not os.environ.get("CI"):
        pytest.skip(str(pg_server.available()))
    server = pg_server.start()
    try:
        url = server.create_database("aimed_sweep")
        argv = ["sweep", "--models", checkpoints / "sft", *TASKS, "--output_dir", tmp_path / "runs", "--db", url,
                "--cache_dir", tmp_path / "cache", "--quiet"]
        code, stdout, err = cli(*argv)
        assert code == 0, err
        assert "3 scored" in stdout and pg_server.PASSWORD not in stdout + err
        code, stdout, err = cli(*argv)
        assert code == 0, err
        assert stdout.count("skipped: already in the index") == 3
        from aimed.harness.index import connect

        db = connect(url, readonly=True)
        try:
            assert sorted(r[0] for r in db.execute("SELECT checkpoint FROM runs").fetchall()) == [
                f"sft/checkpoint-{i}" for i in (1, 2, 3)]
        finally:
            db.close()
    finally:
        server.stop()


def test_list_file_and_glob(cli, checkpoints, tmp_path, monkeypatch):
    monkeypatch.chdir(checkpoints)
    (tmp_path / "list.txt").write_text("# the first two\nsft/checkpoint-1\nsft/checkpoint-2  # trailing note\n\n",
                                       encoding="utf-8")
    from aimed.harness.sweep import find_checkpoints

    found, left = find_checkpoints([str(tmp_path / "list.txt")])
    assert [c.label for c in found] == ["sft/checkpoint-1", "sft/checkpoint-2"] and not left
    found, left = find_checkpoints(["*/checkpoint-*", "sft/checkpoint-1"])  # each checkpoint once
    assert [c.label for c in found] == ["sft/checkpoint-1", "sft/checkpoint-2", "sft/checkpoint-3"]
    assert [x.label for x in left] == ["rm/checkpoint-1"]
    code, _, err = cli("sweep", "--models", "nothing/*/here-*", "--tasks", "demo")
    assert code == 2 and err.count("\n") == 1 and "matches nothing" in err


def test_local_pool_retries_a_killed_worker(checkpoints, tmp_path):
    """SIGKILL the pool's worker in the middle of a job: the pool breaks, the lost job runs
    again, and each checkpoint is recorded once. With no retries left, the job fails in one
    line (what an out-of-memory kill looks like) and the others are scored."""
    out = tmp_path / "runs"
    argv = [*CLI, "sweep", "--models", str(checkpoints / "sft"), *TASKS, "--output_dir", str(out),
            "--no_cache", "--workers", "1", "--quiet"]
    stdout, err, code = _sweep_killing_job_0(argv, out)
    assert code == 0, err
    assert "(attempt 2)" in stdout, stdout
    assert [r[0] for r in _rows(out / "aimed_index.sqlite")] == [f"sft/checkpoint-{i}" for i in (1, 2, 3)]
    assert not list(out.glob(".*.partial-*"))

    out = tmp_path / "no-retries"
    stdout, err, code = _sweep_killing_job_0([*argv[:argv.index("--output_dir")], "--output_dir", str(out),
                                              "--no_cache", "--workers", "1", "--quiet", "--retries", "0"], out)
    assert code == 2 and "Traceback" not in err
    row = next(line for line in stdout.splitlines() if line.startswith("sft/checkpoint-1"))
    assert row.endswith("failed: its worker process died in its one attempt (killed, or out of memory); give "
                        "each job more memory (fewer --workers) or raise --retries"), row
    assert [r[0] for r in _rows(out / "aimed_index.sqlite")] == ["sft/checkpoint-2", "sft/checkpoint-3"]


def _sweep_killing_job_0(argv: list[str], out: Path, after_s: float = 1.0) -> tuple[str, str, int]:
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _kill_first_job(out, proc, after_s)
        stdout, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stdout, err, proc.returncode


def _kill_first_job(out: Path, proc: subprocess.Popen, after_s: float, deadline_s: float = 180) -> int:
    """Wait for job 0's first attempt to start, give it ``after_s`` (a fresh worker spends
    seconds importing torch and loading), SIGKILL its process, and check from the job's log
    that it had not ended. Returns the killed pid."""
    deadline = time.time() + deadline_s
    while time.time() < deadline and proc.poll() is None:
        logs = list(out.glob(".aimed-sweep-*/0.log"))
        if logs and logs[0].read_text(encoding="utf-8").startswith("start "):
            time.sleep(after_s)
            text = logs[0].read_text(encoding="utf-8")
            pid = int(text.split()[1])
            assert f"end {pid}" not in text, "the job ended before it could be killed: make it longer"
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.02)
    ended = proc.poll() is not None
    pytest.fail(f"job 0 never started (sweep exit code {proc.poll()}): {proc.stderr.read()[-2000:] if ended else ''}")


# ------------------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_cluster():
    with start_ray_cluster() as address:
        yield address


def test_ray_sweep_survives_a_killed_worker(ray_cluster, checkpoints, tiny_llama, tmp_path):
    bad = _bad_checkpoint(tiny_llama, tmp_path / "broken")
    out = tmp_path / "runs"
    argv = [*CLI, "sweep", "--models", str(checkpoints / "sft"), str(bad), *TASKS, "--executor", "ray", "--address",
            ray_cluster, "--output_dir", str(out), "--cache_dir", str(tmp_path / "cache"), "--quiet"]
    stdout, err, code = _sweep_killing_job_0(argv, out)
    assert code == 2, err  # the broken checkpoint
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith("1 of 4 checkpoint(s) failed (broken); the table above says why")
    assert f"on the Ray cluster at {ray_cluster}: 1 node(s), 2 CPUs, 0 GPUs" in err
    lines = {line.split()[0]: line for line in stdout.splitlines() if line.startswith(("sft/", "broken"))}
    assert "scored (attempt 2" in lines["sft/checkpoint-1"], stdout
    assert "not a readable safetensors file" in lines["broken"]
    rows = _rows(out / "aimed_index.sqlite")
    assert [r[0] for r in rows] == [f"sft/checkpoint-{i}" for i in (1, 2, 3)]  # exactly one row each
    assert all((Path(r[2]) / "results.json").is_file() for r in rows)

    # rerun on the cluster: all skipped, nothing recorded
    done = subprocess.run([*argv[:argv.index(str(bad))], *argv[argv.index(str(bad)) + 1:]], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("skipped: already in the index") == 3
    assert _rows(out / "aimed_index.sqlite") == rows


def test_ray_job_out_of_attempts_fails_alone(ray_cluster, checkpoints, tmp_path):
    out = tmp_path / "runs"
    argv = [*CLI, "sweep", "--models", str(checkpoints / "sft"), *TASKS, "--executor", "ray", "--address",
            ray_cluster, "--retries", "0", "--output_dir", str(out), "--no_cache", "--quiet"]
    stdout, err, code = _sweep_killing_job_0(argv, out, after_s=0)  # the workers may be warm: kill at once
    assert code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].endswith("1 of 3 checkpoint(s) failed (sft/checkpoint-1); the table above "
                                                 "says why")
    row = next(line for line in stdout.splitlines() if line.startswith("sft/checkpoint-1"))
    assert "failed: its worker process died in its one attempt (killed, or out of memory)" in row, row
    assert [r[0] for r in _rows(out / "aimed_index.sqlite")] == ["sft/checkpoint-2", "sft/checkpoint-3"]


def test_ray_resources_no_node_has(ray_cluster, checkpoints, tmp_path):
    done = subprocess.run([*CLI, "sweep", "--models", str(checkpoints / "sft"), *TASKS, "--executor", "ray",
                           "--address", ray_cluster, "--gpus_per_job", "1", "--output_dir", str(tmp_path / "r")],
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"aimed-eval: error: --gpus_per_job 1: no node of the Ray cluster at {ray_cluster} has that many GPUs "
        "(the most a node has: 0), so the jobs would wait forever; lower it"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("server", ["closed", "http"])
def test_unreachable_ray_address_is_one_fast_line(cli, checkpoints, tmp_path, server):
    need_ray()
    port = free_port()
    http = None
    if server == "http":  # a port that answers, but not as a Ray head
        http = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
    try:
        started = time.time()
        code, _, err = cli("sweep", "--models", checkpoints / "sft", *TASKS, "--executor", "ray", "--address",
                           f"127.0.0.1:{port}", "--connect_timeout", "3", "--output_dir", tmp_path / "r")
        assert time.time() - started < 10
    finally:
        if http is not None:
            http.terminate()
            http.wait(10)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"aimed-eval: error: --address 127.0.0.1:{port}: ")
    assert ("cannot reach a Ray cluster there" if server == "closed" else "not a Ray head node") in err
    assert not (tmp_path / "r").exists()


def test_ray_failure_reasons_are_one_line():
    ray = need_ray()
    from aimed.harness.sweep.ray_executor import failure_reason

    oom = failure_reason(ray.exceptions.OutOfMemoryError("Task was killed due to the node running low on memory.\n"
                                                         "Memory on the node was 31.5GB / 32GB"), 3)
    assert oom.startswith("out of memory: Ray's memory monitor stopped its worker (3 attempt(s))") and "\n" not in oom
    crashed = failure_reason(ray.exceptions.WorkerCrashedError(), 3)
    assert crashed.startswith("its worker process died in each of 3 attempts") and "\n" not in crashed
