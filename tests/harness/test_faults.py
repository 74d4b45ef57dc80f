"""Real faults, not simulated ones: a full file system and a read-only one (tmpfs mounts,
skipped only where the test may not mount), a truncated cache, a locked index, SIGKILL and
SIGINT in the middle of a run, two runs aimed at one folder. Each ends in one line and exit
2 (130 for an interrupt), nothing half-written, and nothing lost that was computed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "aimed.harness.cli"]


@pytest.fixture
def mount(tmp_path):
    """mount(size) -> a fresh tmpfs folder of that size; all unmounted at the end."""
    mounted = []

    def make(size: str, name: str = "fs") -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fill(folder: Path, leave_bytes: int) -> None:
    """Fill the file system of ``folder`` until about ``leave_bytes`` are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler.bin").write_bytes(b"\0" * max(0, free - leave_bytes))


def _one_line(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = [x for x in err.splitlines() if x.startswith("aimed-eval:") and not x.startswith("aimed-eval: warning")]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _computed(results: dict, task: str) -> int:
    return results["aimed"]["timings"][task]["computed"]


def test_full_disk_keeps_the_answers_and_leaves_nothing(cli, tiny_llama, tmp_path, mount):
    full = mount("256k")
    _fill(full, 8 * 1024)
    cache = tmp_path / "cache"
    args = ["run", "--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", cache, "--no_index", "--quiet"]
    code, _, err = cli(*args, "--output_dir", full / "run")
    line = _one_line(code, err, "No space left on device", "response cache", str(cache))
    assert "rerun" in line
    assert sorted(p.name for p in full.iterdir()) == ["filler.bin"]  # no run folder, no .partial, no lock
    code, _, err = cli(*args, "--output_dir", tmp_path / "run")  # the rerun computes nothing
    assert code == 0, err
    results = json.loads((tmp_path / "run" / "results.json").read_text(encoding="utf-8"))
    assert _computed(results, "demo_mcq") == 0 and results["n-samples"]["demo_mcq"]["effective"] == 24


def test_full_disk_for_every_writer(cli, tiny_llama, tmp_path, mount):
    full = mount("256k")
    base = tmp_path / "runs"
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        assert cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--output_dir", base / name,
                   "--cache_dir", cache, "--db", tmp_path / "index.sqlite", "--quiet")[0] == 0
    _fill(full, 2 * 1024)
    before = sorted(p.name for p in full.iterdir())
    _one_line(*_code_err(cli("export-lm-eval", "--tasks", "demo", "--out", full / "export")), "--out", "space")
    _one_line(*_code_err(cli("gate", "--candidate", base / "b", "--baseline", base / "a", "--json",
                             full / "verdict.json")), "verdict.json", "space")
    _one_line(*_code_err(cli("import", base / "a", "--db", full / "index.sqlite")), "index.sqlite")
    _one_line(*_code_err(cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", full / "cache",
                             "--no_index", "--output_dir", tmp_path / "r2")), "response cache")
    adapter = tmp_path / "adapter"
    _llama_adapter(tiny_llama, adapter)
    _one_line(*_code_err(cli("merge", "--model", tiny_llama, "--lora_model", adapter, "--out", full / "merged",
                             "--only_cpu")), "--out", "space")
    left = sorted(p.name for p in full.iterdir())
    assert left == before, left
    assert not list(full.rglob("*.tmp*"))


def _llama_adapter(base: Path, out: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(out)


def _code_err(result) -> tuple[int, str]:
    return result[0], result[2]


def test_read_only_file_system(cli, tiny_llama, tmp_path, mount):
    ro = mount("1m", "ro")
    (ro / "runs").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    cache = tmp_path / "cache"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--output_dir", ro / "runs" / "r",
                       "--cache_dir", cache, "--no_index", "--quiet")
    _one_line(code, err, "Read-only file system", "--output_dir")  # said before anything is scored
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--output_dir", tmp_path / "r",
                       "--cache_dir", ro / "cache", "--no_index", "--quiet")
    _one_line(code, err, "response cache", "Read-only")
    code, _, err = cli("merge", "--model", tiny_llama, "--lora_model", "x", "--out", ro / "m")
    assert code == 2 and "Traceback" not in err
    assert sorted(p.name for p in ro.rglob("*")) == ["runs"]


def test_damaged_cache_is_moved_aside_and_the_run_goes_on(cli, tiny_llama, tmp_path):
    cache = tmp_path / "cache"
    args = ["run", "--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", cache, "--no_index", "--quiet"]
    assert cli(*args, "--output_dir", tmp_path / "r1")[0] == 0
    db = cache / "responses.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for n, damage in enumerate((lambda b: b[: len(b) // 3], lambda b: b"garbage" * 100)):
        db.write_bytes(damage(db.read_bytes()))
        code, _, err = cli(*args, "--output_dir", tmp_path / f"r{n + 2}")
        assert code == 0, err
        assert "damaged response cache" in err and "moved aside" in err and "Traceback" not in err
        results = json.loads((tmp_path / f"r{n + 2}" / "results.json").read_text(encoding="utf-8"))
        assert _computed(results, "demo_mcq") == 24  # recomputed into the fresh cache
    assert len(list(cache.glob("responses.sqlite.damaged-*"))) >= 1


def test_locked_index_says_so_and_keeps_the_run(cli, tiny_llama, tmp_path, monkeypatch):
    index = tmp_path / "index.sqlite"
    assert cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--limit", "4", "--output_dir", tmp_path / "a",
               "--db", index, "--no_cache", "--quiet")[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "db.execute('BEGIN EXCLUSIVE'); print('held', flush=True); time.sleep(60)"), str(index)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("AIMED_DB_WAIT_S", "1")
        code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--limit", "4",
                           "--output_dir", tmp_path / "b", "--db", index, "--no_cache", "--quiet")
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 2 and "Traceback" not in err, err
        assert "waiting up to 1 s" in lines[0] and "locked by another process" in lines[1]
        assert "aimed-eval import" in lines[1] and (tmp_path / "b" / "results.json").is_file()
        code, _, err = cli("import", tmp_path / "b", "--db", index)
        assert code == 2 and "locked by another process" in err and "not a results index" not in err
    finally:
        holder.kill()
        holder.wait()
    db = sqlite3.connect(index)
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # nothing half-recorded
    db.close()


LONG_RUN_ITEMS = 3000


def _start_long_run(tiny_llama: Path, out: Path, cache: Path) -> subprocess.Popen:
    """A run that takes minutes: CMExam items answered in generate mode (it is stopped long
    before it ends)."""
    return subprocess.Popen([*CLI, "run", "--model", str(tiny_llama), "--tasks", "cmexam",
                             "--limit", str(LONG_RUN_ITEMS),
                             "--mode", "generate", "--batch_size", "4", "--output_dir", str(out),
                             "--cache_dir", str(cache), "--no_index"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for_answers(cache: Path, proc: subprocess.Popen, at_least: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            db = sqlite3.connect(cache / "responses.sqlite", timeout=5)
            n = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            db.close()
            if n >= at_least:
                return n
        except sqlite3.Error:
            pass
        time.sleep(0.3)
    raise AssertionError("the run cached no answers in time")


def test_second_run_refused_kill_resumes_interrupt_leaves_nothing(cli, tiny_llama, tmp_path, data_dir):
    out, cache = tmp_path / "run", tmp_path / "cache"
    first = _start_long_run(tiny_llama, out, cache)
    try:
        _wait_for_answers(cache, first, 8)
        code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--output_dir", out,
                           "--no_cache", "--no_index", "--quiet")
        _one_line(code, err, "another aimed-eval command", str(first.pid))
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    assert not out.exists() and not list(tmp_path.glob(".run.partial-*"))
    db = sqlite3.connect(cache / "responses.sqlite")
    kept = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    db.close()
    assert kept >= 8
    # the rerun starts from what the killed run cached (its bar opens at kept/N), then an
    # interrupt ends it with 130, no run folder and no lock left
    second = _start_long_run(tiny_llama, out, cache)
    try:
        _wait_for_answers(cache, second, kept + 4)
        second.send_signal(signal.SIGINT)
        _, err = second.communicate(timeout=120)
    finally:
        second.kill()
    assert f"{kept}/{LONG_RUN_ITEMS}" in err, err[-2000:]
    assert second.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists() and not (tmp_path / ".run.lock").exists()
    assert not list(tmp_path.glob(".run.partial-*"))


def test_training_on_a_full_disk_is_one_line_and_leaves_no_stage_folder(cli, tiny_llama, mount):
    full = mount("300k")
    _fill(full, 20 * 1024)
    code, _, err = cli("train", "--stage", "sft", "--model", tiny_llama, "--train_tasks", "demo_mcq",
                       "--max_steps", "1", "--output_dir", full / "sft", "--eval_tasks", "", "--only_cpu", "true")
    _one_line(code, err, "output_dir", "No space left on device")
    assert sorted(p.name for p in full.iterdir()) == ["filler.bin"]


def test_a_stage_folder_being_trained_is_not_trained_into_again(cli, tiny_llama, tmp_path):
    from aimed.harness.owned import folder_lock

    out = tmp_path / "sft"
    with folder_lock(out, "output_dir"):  # another stage holds it (flock: per open file, so this process too)
        code, _, err = cli("train", "--stage", "sft", "--model", tiny_llama, "--train_tasks", "demo_mcq",
                           "--max_steps", "1", "--output_dir", out, "--eval_tasks", "", "--only_cpu", "true")
    _one_line(code, err, "another aimed-eval command", str(os.getpid()))
    assert not out.exists()
