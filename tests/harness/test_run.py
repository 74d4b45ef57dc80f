"""`aimed-eval run` end to end on tiny models and the real data."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def _choices(run_dir: Path, task: str) -> list:
    lines = (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x)["filtered_resps"] for x in lines]


def test_demo_tasks_all_modes(cli, tiny_llama, tmp_path):
    for mode in ("loglikelihood", "cloze", "generate"):
        out = tmp_path / mode
        code, stdout, err = cli("run", "--model", tiny_llama, "--tasks", "demo", "--mode", mode,
                                "--output_dir", out, "--cache_dir", tmp_path / "cache", "--quiet")
        assert code == 0, err
        res = _results(out)
        assert res["results"]["demo_mcq"]["alias"] == "demo_mcq"
        acc = res["results"]["demo_mcq"]["acc,none"]
        assert 0.0 <= acc <= 1.0
        assert isinstance(res["results"]["demo_mcq"]["acc_stderr,none"], float)
        assert res["configs"]["demo_mcq"]["aimed_mode"] == mode
        # generation tasks always generate, whatever --mode says
        assert res["configs"]["demo_medterm"]["aimed_mode"] == "generate"
        assert "demo" in res["groups"] and "score,none" in res["groups"]["demo"]
        assert res["aimed"]["model"]["fingerprint"]
        assert "demo_mcq" in stdout


def test_lm_eval_layout_keys(cli, tiny_llama, tmp_path):
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--output_dir", tmp_path / "r",
                       "--no_cache", "--quiet")
    assert code == 0, err
    res = _results(tmp_path / "r")
    for key in ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date"):
        assert key in res, key
    assert res["higher_is_better"]["demo_mcq"]["acc"] is True
    n = res["n-samples"]["demo_mcq"]["effective"]
    recs = [json.loads(x) for x in (tmp_path / "r" / "samples_demo_mcq.jsonl").read_text().splitlines()]
    assert len(recs) == n
    assert sum(r["acc"] for r in recs) / n == pytest.approx(res["results"]["demo_mcq"]["acc,none"])


def test_rerun_is_served_from_cache(cli, tiny_llama, tmp_path):
    args = ["run", "--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", tmp_path / "cache", "--quiet"]
    assert cli(*args, "--output_dir", tmp_path / "a")[0] == 0
    assert cli(*args, "--output_dir", tmp_path / "b")[0] == 0
    a, b = _results(tmp_path / "a"), _results(tmp_path / "b")
    assert b["aimed"]["timings"]["demo_mcq"]["computed"] == 0
    assert b["aimed"]["timings"]["demo_mcq"]["cached"] == a["aimed"]["timings"]["demo_mcq"]["computed"] > 0
    assert _choices(tmp_path / "a", "demo_mcq") == _choices(tmp_path / "b", "demo_mcq")


def test_two_checkpoints_never_share_answers(cli, tiny_llama, tiny_qwen2, tmp_path):
    cache = tmp_path / "cache"
    assert cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", cache,
               "--output_dir", tmp_path / "a", "--quiet")[0] == 0
    assert cli("run", "--model", tiny_qwen2, "--tasks", "demo_mcq", "--cache_dir", cache,
               "--output_dir", tmp_path / "b", "--quiet")[0] == 0
    b = _results(tmp_path / "b")
    assert b["aimed"]["timings"]["demo_mcq"]["cached"] == 0
    assert _results(tmp_path / "a")["aimed"]["model"]["fingerprint"] != b["aimed"]["model"]["fingerprint"]


def test_rescore_without_model(cli, tiny_llama, tmp_path):
    run = tmp_path / "r"
    assert cli("run", "--model", tiny_llama, "--tasks", "demo", "--output_dir", run, "--no_cache",
               "--quiet")[0] == 0
    before = _results(run)
    code, out, err = cli("score", run)
    assert code == 0, err
    assert _results(run)["results"] == before["results"]
    # Rewrite the saved outputs so that the gold letters win: re-scoring must see it.
    f = run / "samples_demo_mcq.jsonl"
    recs = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    for r in recs:
        letters = list(r["doc"]["options"])
        r["resps"] = [[0.0 if k in r["doc"]["answer"] else -50.0, 1, False] for k in letters]
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    assert cli("score", run)[0] == 0
    after = _results(run)
    assert after["results"]["demo_mcq"]["acc,none"] == 1.0
    assert after["results"]["demo_mcq"]["set_f1,none"] == 1.0
    assert after["groups"]["demo"]["score,none"] != before["groups"]["demo"]["score,none"]


def test_killed_run_resumes_without_recomputing(tiny_llama, tmp_path, data_dir):
    """SIGKILL midway through cmexam; the rerun computes only what was not committed."""
    env = {**os.environ, "AIMED_DATA": str(data_dir)}
    cmd = [sys.executable, "-m", "aimed.harness.cli", "run", "--model", str(tiny_llama), "--tasks", "cmexam",
           "--limit", "1500", "--batch_size", "8", "--quiet"]
    cached = ["--cache_dir", str(tmp_path / "cache")]
    proc = subprocess.Popen(cmd + cached + ["--output_dir", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "cache" / "responses.sqlite"
    deadline = time.time() + 240
    import sqlite3

    def committed() -> int:
        try:
            with sqlite3.connect(db, timeout=5) as c:
                return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.Error:
            return 0

    while time.time() < deadline and committed() < 512:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = committed()
    assert 0 < done_before < 1500, "kill landed outside the run"
    assert not (tmp_path / "killed").exists(), "a killed run must leave no run folder"
    resumed = subprocess.run(cmd + cached + ["--output_dir", str(tmp_path / "resumed")], env=env, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    timing = _results(tmp_path / "resumed")["aimed"]["timings"]["cmexam"]
    assert timing["cached"] == done_before and timing["computed"] == 1500 - done_before
    fresh = subprocess.run(cmd + ["--no_cache", "--output_dir", str(tmp_path / "fresh")], env=env,
                           capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert _choices(tmp_path / "resumed", "cmexam") == _choices(tmp_path / "fresh", "cmexam")
    a, b = _results(tmp_path / "resumed"), _results(tmp_path / "fresh")
    assert a["results"]["cmexam"]["acc,none"] == b["results"]["cmexam"]["acc,none"]
