"""End to end with a real judge: a tiny model taught the judge's format by the project's own
``sft`` stage, served by ``aimed-eval serve`` on 127.0.0.1 with an API key, judges real
``medterm`` items: the judgements are read and cached, a run killed with SIGKILL resumes
without asking again, and the run is re-scored without the candidate model (and, from the
run's own records, without the judge)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

KEY_ENV, KEY = "AIMED_TEST_JUDGE_KEY", "judge-secret-0413"
# What the tiny judge learns to say. Its weighted score: (4*2 + 3 + 5 + 4) / 5 = 4.0 (medterm.yaml's weights)
JUDGEMENT = "准确性：[[4]]\n完整性：[[3]]\n安全性：[[5]]\n流畅性：[[4]]\n危险：否\n理由：与参考答案基本一致"
ITEMS = 24


@pytest.fixture(scope="module")
def judge_checkpoint(tiny_llama, data_dir, tmp_path_factory) -> Path:
    """The tiny Llama fully fine-tuned (80 steps) on the medterm rubric's prompts for real
    terms, with right, wrong and empty answers, all answered with JUDGEMENT."""
    from aimed.harness.judge.records import item_fields
    from aimed.harness.judge.rubric import load_rubric
    from aimed.trainers import load_stage_config, train_stage

    rubric = load_rubric("medterm")
    root = tmp_path_factory.mktemp("judge")
    rows = []
    lines = (data_dir / "medterm" / "term_definitions.jsonl").read_text(encoding="utf-8").splitlines()
    for item in map(json.loads, lines[:16]):
        for answer in (item["definition"], "不知道", item["definition"][:10]):
            record = {"doc": {"question": item["term"], "target": item["definition"]}, "resps": answer}
            rows.append({"instruction": rubric.render(item_fields(record)), "input": "", "output": JUDGEMENT})
    data = root / "judge_sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = load_stage_config("sft", None, dict(
        model=str(tiny_llama), output_dir=str(root / "sft"), train_files=[str(data)], finetune="full",
        learning_rate=3e-3, max_steps=80, per_device_train_batch_size=8, max_length=1024, only_cpu=True,
        eval_tasks=[], seed=0, lr_scheduler_type="constant", save_steps=1000, logging_steps=10))
    return train_stage("sft", config).final


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def judge_url(judge_checkpoint):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", "serve", "--model", str(judge_checkpoint),
                             "--port", str(port), "--api_key", KEY, "--served_model_name", "tiny-judge"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"judge server exited: {proc.stdout.read()}")
            try:
                urllib.request.urlopen(base + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("judge server not healthy after 120 s")
        yield base + "/v1", proc
    finally:
        proc.terminate()  # stopped by its PID
        proc.wait(timeout=30)


def _judge_config(path: Path, url: str) -> Path:
    path.write_text(f"base_url: {url}\nmodel: tiny-judge\napi_key_env: {KEY_ENV}\nmax_new_tokens: 64\n"
                    "concurrency: 1\n", encoding="utf-8")
    return path


def _judged_rows(cache: Path) -> int:
    if not (cache / "responses.sqlite").exists():
        return 0
    db = sqlite3.connect(cache / "responses.sqlite", timeout=30)
    try:
        return db.execute("SELECT count(*) FROM responses WHERE response LIKE '{\"outputs\"%'").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not made yet
        return 0
    finally:
        db.close()


def test_a_served_tiny_judge_scores_caches_resumes_and_rescores(cli, tiny_llama, judge_url, tmp_path, monkeypatch):
    url, server = judge_url
    monkeypatch.setenv(KEY_ENV, KEY)
    config = _judge_config(tmp_path / "judge.yaml", url)
    cache, run = tmp_path / "cache", tmp_path / "run"
    argv = ["run", "--model", str(tiny_llama), "--tasks", "medterm", "--limit", str(ITEMS), "--judge", str(config),
            "--cache_dir", str(cache), "--output_dir", str(run), "--no_index", "--quiet"]

    # a run killed (SIGKILL) once a few judgements are committed
    killed = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", *argv], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env={**os.environ, KEY_ENV: KEY})
    deadline = time.time() + 300
    while _judged_rows(cache) < 3 and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read()[-2000:]
    before = _judged_rows(cache)
    assert 3 <= before < ITEMS

    # the rerun asks the judge only for the items it had not judged
    code, out, err = cli(*argv, "--overwrite")
    assert code == 0, err
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    cost = results["aimed"]["judge"]["tasks"]["medterm"]
    assert cost["cached"] == before and cost["asked"] == ITEMS - before and cost["invalid"] == 0
    assert cost["completion_tokens"] > 0 and cost["latency_mean_s"] > 0
    scores = results["results"]["medterm"]
    assert scores["judge_score,none"] == pytest.approx(4.0) and scores["judge_accuracy,none"] == 4.0
    assert scores["judge_completeness,none"] == 3.0 and scores["judge_unsafe,none"] == 0.0
    assert scores["judge_invalid,none"] == 0.0
    assert results["higher_is_better"]["medterm"]["judge_score"] is True
    assert results["higher_is_better"]["medterm"]["judge_unsafe"] is False
    records = [json.loads(line) for line in (run / "samples_medterm.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["judge"]["scores"] == {"accuracy": 4, "completeness": 3, "safety": 5, "fluency": 4} for r in records)
    assert results["aimed"]["judge"]["judge"]["model"] == "tiny-judge"
    assert KEY not in (run / "results.json").read_text(encoding="utf-8")  # the key is never recorded
    assert _judged_rows(cache) == ITEMS

    # re-judged from the saved outputs, without the candidate model: every judgement cached
    code, out, err = cli("score", run, "--judge", config, "--cache_dir", cache, "--quiet")
    assert code == 0, err
    again = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert again["aimed"]["judge"]["tasks"]["medterm"]["asked"] == 0
    assert again["results"]["medterm"]["judge_score,none"] == scores["judge_score,none"]

    # a wrong key: one line that names the variable the key comes from
    monkeypatch.setenv(KEY_ENV, "bad-key-77")
    code, out, err = cli("score", run, "--judge", config, "--cache_dir", cache)
    assert code == 2 and "HTTP 401" in err and f"check the key in ${KEY_ENV}" in err and "Traceback" not in err
    assert "bad-key-77" not in err and len(err.strip().splitlines()) == 1

    # the judge gone: re-scoring from the run's own records needs neither model
    server.terminate()
    server.wait(timeout=30)
    code, out, err = cli("score", run)
    assert code == 0, err
    offline = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert offline["results"]["medterm"]["judge_score,none"] == scores["judge_score,none"]
    monkeypatch.setenv(KEY_ENV, KEY)
    code, out, err = cli("score", run, "--judge", config, "--cache_dir", cache)
    assert code == 2 and "cannot reach the server" in err and len(err.strip().splitlines()) == 1


def test_a_local_checkpoint_judges_too(cli, tiny_llama, judge_checkpoint, tmp_path):
    """The same judge loaded here (the hf backend) instead of served: the same judgements."""
    config = tmp_path / "local.yaml"
    config.write_text(f"model: {judge_checkpoint}\ntemplate_name: vicuna\nmax_new_tokens: 64\n", encoding="utf-8")
    run = tmp_path / "run"
    code, out, err = cli("run", "--model", tiny_llama, "--tasks", "medterm", "--limit", "4", "--judge", config,
                         "--output_dir", run, "--no_index", "--no_cache", "--quiet")
    assert code == 0, err
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["results"]["medterm"]["judge_score,none"] == pytest.approx(4.0)
    cost = results["aimed"]["judge"]["tasks"]["medterm"]
    assert cost["asked"] == 4 and cost["invalid"] == 0 and cost["completion_tokens"] > 0
    assert results["aimed"]["judge"]["judge"]["model"] == str(judge_checkpoint)
