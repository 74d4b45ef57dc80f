"""A pipeline with a ``judge:`` section: the base model and every checkpoint are judged on
the demo's term explanations, the stage's gate checks a judge metric, and the judge
metrics reach the leaderboard, the report and the dashboard's comparison like any other.
The judge is the loopback endpoint of tests/harness/flaky_judge.py, without faults."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aimed.harness.tinymodel import build_tiny_model
from aimed.trainers.demo_cmd import demo_texts

HERE = Path(__file__).resolve().parent
DEMO_DATA = HERE.parents[1] / "trainers" / "demo_data"


def _pipeline(url: str) -> dict:
    return {
        "output_root": "out",
        "base_models": [{"name": "tiny", "model": "models/tiny"}],
        "stages": ["pt"],
        "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0},
        "stage_config": {"pt": {"train_files": ["pretrain.txt"], "max_length": 64, "learning_rate": 1.0e-4,
                                "max_steps": 2, "save_steps": 2, "per_device_train_batch_size": 8}},
        "eval": {"tasks": ["demo_medterm"], "limit": 6},
        "judge": {"base_url": url, "concurrency": 2},
        "stage_gates": {"pt": {"rules": {"demo_medterm": {"judge_score": {"max_drop": 5.0}}}}},
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    from aimed.harness.cli import main

    root = tmp_path_factory.mktemp("judge-pipeline")
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):  # demo_texts reads all three
        shutil.copyfile(DEMO_DATA / name, root / name)
    build_tiny_model(root / "models" / "tiny", demo_texts(root), arch="llama", seed=0, max_positions=512)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = subprocess.Popen([sys.executable, str(HERE.parent / "harness" / "flaky_judge.py"), str(port),
                              "--no_faults"], stdout=subprocess.PIPE, text=True)
    try:
        assert judge.stdout.readline().strip() == "ready"
        (root / "pipeline.yaml").write_text(yaml.safe_dump(_pipeline(f"http://127.0.0.1:{port}/v1")),
                                            encoding="utf-8")
        code = main(["pipeline", "--config", str(root / "pipeline.yaml")])
    finally:
        judge.terminate()  # stopped by its PID
        judge.wait(timeout=30)
    state = json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))
    return {"code": code, "root": root, "stage": state["lines"]["tiny"]["stages"]["pt"]}


def _results(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))


def test_every_checkpoint_is_judged_and_the_gate_checks_a_judge_metric(outcome):
    assert outcome["code"] == 0
    stage = outcome["stage"]
    base, candidate = _results(stage["parent_run"]), _results(stage["checkpoints"][0]["run_dir"])
    for results in (base, candidate):
        cost = results["aimed"]["judge"]["tasks"]["demo_medterm"]
        assert cost["asked"] == 6 and cost["invalid"] == 0 and results["aimed"]["judge"]["judge"]["concurrency"] == 2
    check = stage["decision"]["checks"][0]
    assert (check["task"], check["metric"]) == ("demo_medterm", "judge_score")
    assert check["baseline"] == pytest.approx(base["results"]["demo_medterm"]["judge_score,none"])
    assert check["candidate"] == pytest.approx(candidate["results"]["demo_medterm"]["judge_score,none"])


def test_judge_metrics_reach_the_leaderboard_report_and_dashboard(outcome, cli, tmp_path):
    db = outcome["root"] / "out" / "aimed_index.sqlite"
    code, out, err = cli("leaderboard", "--db", db, "--all_metrics")
    assert code == 0, err
    head = out.splitlines()[2]
    assert all(m in head for m in ("judge_score", "judge_accuracy", "judge_unsafe", "judge_invalid"))
    stage = outcome["stage"]
    score = _results(stage["parent_run"])["results"]["demo_medterm"]["judge_score,none"]
    assert f"{score:.4f}" in out.splitlines()[4]

    code, out, err = cli("report", "--db", db, "--format", "markdown", "--out", tmp_path / "report.md")
    assert code == 0, err
    assert "judge_score" in (tmp_path / "report.md").read_text(encoding="utf-8")

    from aimed.leaderboards.dashboard import data

    compared = data.comparison(stage["parent_run"], stage["checkpoints"][0]["run_dir"])
    rows = {r["metric"]: r for r in compared["metrics"] if r["task"] == "demo_medterm"}
    assert rows["judge_score"]["a"] == pytest.approx(score) and rows["judge_score"]["higher_is_better"] is True
    assert rows["judge_invalid"]["higher_is_better"] is False
