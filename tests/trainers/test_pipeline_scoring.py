"""``scoring:`` in a pipeline: checkpoints scored beside training, on the local pool or a
real Ray cluster, with the same figures as scoring them inline.

The proof that training does not wait for evaluation: the judge (tests/harness/
flaky_judge.py on loopback) holds every answer until the stage's marker exists, which the
stage writes when its training is over. Scoring cannot finish before training does, so a
pipeline whose training waited for a checkpoint's scores would never end."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray_cluster import ray_cluster, ray_env

from aimed.harness.tinymodel import build_tiny_model
from aimed.trainers.demo_cmd import demo_texts

HERE = Path(__file__).resolve().parent
DEMO_DATA = HERE.parents[1] / "trainers" / "demo_data"
TASK, LIMIT = "demo_medterm", 4


def _pipeline(scoring: dict, judge_url: str | None = None) -> dict:
    data = {
        "output_root": "out",
        "base_models": [{"name": "tiny", "model": "models/tiny"}],
        "stages": ["pt"],
        "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0},
        "stage_config": {"pt": {"train_files": ["pretrain.txt"], "max_length": 64, "learning_rate": 1.0e-3,
                                "max_steps": 4, "save_steps": 2, "per_device_train_batch_size": 8}},
        "eval": {"tasks": [TASK], "limit": LIMIT},
        "stage_gates": {"pt": {"rules": {"*": {"*": {"max_drop": 5.0}}}}},
        "scoring": scoring,
    }
    if judge_url:
        data["judge"] = {"base_url": judge_url, "timeout": 600, "concurrency": 2}
    return data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scoring-model")
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):  # demo_texts reads all three
        shutil.copyfile(DEMO_DATA / name, root / name)
    build_tiny_model(root / "tiny", demo_texts(root), arch="llama", seed=0, max_positions=512)
    return root


def _run(tiny: Path, root: Path, data: dict, env: dict | None = None) -> dict:
    """One pipeline in ``root`` (the tiny model and the pretraining file beside it), as its own
    process, as a user runs it: the local pool's spawned workers re-import the parent's
    ``__main__``, which an in-process streamlit test leaves pointing at the dashboard script,
    and a Ray driver's state is its process's."""
    (root / "models").mkdir(parents=True)
    shutil.copytree(tiny / "tiny", root / "models" / "tiny")
    shutil.copyfile(DEMO_DATA / "pretrain.txt", root / "pretrain.txt")
    (root / "pipeline.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "aimed.harness.cli", "pipeline", "--config", str(root / "pipeline.yaml")],
                          env=env, capture_output=True, text=True, timeout=600)
    state = json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))
    return {"code": done.returncode, "said": done.stdout + done.stderr, "root": root, "line": state["lines"]["tiny"],
            "stage": state["lines"]["tiny"]["stages"]["pt"]}


def _figures(run_dir: str, *metrics: str) -> dict:
    results = json.loads((Path(run_dir) / "results.json").read_text(encoding="utf-8"))
    return {m: results["results"][TASK][f"{m},none"] for m in metrics}


def _by_step(stage: dict, *metrics: str) -> dict:
    return {c["step"]: _figures(c["run_dir"], *metrics) for c in stage["checkpoints"]}


def _index_rows(root: Path) -> list[tuple]:
    with sqlite3.connect(root / "out" / "aimed_index.sqlite") as db:
        return db.execute("SELECT stage, step, run_dir FROM runs ORDER BY stage, step").fetchall()


@pytest.fixture(scope="module")
def held(tiny, tmp_path_factory):
    """The same pipeline scored beside training (local pool, the judge held until training
    ends) and inline (the hold long released), against one judge server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    beside_root, inline_root = tmp_path_factory.mktemp("beside"), tmp_path_factory.mktemp("inline")
    marker = beside_root / "out" / "tiny" / "pt" / "aimed_stage.json"
    judge = subprocess.Popen([sys.executable, str(HERE.parent / "harness" / "flaky_judge.py"), str(port),
                              "--no_faults", "--hold_until", str(marker)], stdout=subprocess.PIPE, text=True)
    try:
        assert judge.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}/v1"
        beside = _run(tiny, beside_root, _pipeline({"executor": "local", "workers": 1}, url))
        inline = _run(tiny, inline_root, _pipeline({"executor": "inline"}, url))
    finally:
        judge.terminate()  # stopped by its PID
        judge.wait(timeout=30)
    return {"beside": beside, "inline": inline, "marker": marker}


def test_training_goes_on_while_checkpoints_are_scored(held):
    beside, marker = held["beside"], held["marker"]
    assert beside["code"] == 0, beside["said"][-2000:]
    stage = beside["stage"]
    assert [c["step"] for c in stage["checkpoints"]] == [2, 4]
    assert stage["decision"]["verdict"] == "promoted"
    assert stage["parent_run"] == beside["line"]["base_run"]
    # every score was delivered after training ended (the judge held it), and the gate had them all
    runs = [stage["parent_run"], *(c["run_dir"] for c in stage["checkpoints"])]
    for run in runs:
        assert (Path(run) / "results.json").stat().st_mtime >= marker.stat().st_mtime
        assert _figures(run, "judge_score")["judge_score"] >= 1.0
    # each recorded once, with its lineage; the job logs are gone
    rows = _index_rows(beside["root"])
    assert [(r[0], r[1]) for r in rows] == [("base", None), ("pt", 2), ("pt", 4)]
    assert sorted(r[2] for r in rows) == sorted(runs)
    assert not list((beside["root"] / "out").glob(".aimed-scoring-*"))


def test_scores_beside_training_equal_scores_inline(held):
    beside, inline = held["beside"], held["inline"]
    assert inline["code"] == 0, inline["said"][-2000:]
    metrics = ("rougeL", "char_f1", "judge_score")
    assert _by_step(beside["stage"], *metrics) == _by_step(inline["stage"], *metrics)
    assert _figures(beside["line"]["base_run"], *metrics) == _figures(inline["line"]["base_run"], *metrics)
    assert beside["stage"]["decision"]["summary"] == inline["stage"]["decision"]["summary"]


def test_a_ray_cluster_scores_the_pipelines_checkpoints(tiny, held, tmp_path):
    """The judge left out: the checkpoints' own figures, on a real cluster of two workers."""
    with ray_cluster() as address:
        outcome = _run(tiny, tmp_path, _pipeline({"executor": "ray", "address": address}), env=ray_env())
    assert outcome["code"] == 0, outcome["said"][-2000:]
    assert f"on the Ray cluster at {address}: 1 node(s), 2 CPUs, 0 GPUs" in outcome["said"]
    assert [(r[0], r[1]) for r in _index_rows(tmp_path)] == [("base", None), ("pt", 2), ("pt", 4)]
    inline = held["inline"]
    assert _by_step(outcome["stage"], "rougeL", "char_f1") == _by_step(inline["stage"], "rougeL", "char_f1")
    assert _figures(outcome["line"]["base_run"], "rougeL") == _figures(inline["line"]["base_run"], "rougeL")
