"""``run --log_to mlflow`` against a local MLflow file store: the run's params (fingerprint,
lineage), every metric with its standard error, and the run folder as artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")


def test_a_run_is_logged_to_a_local_mlflow_store(cli, tiny_llama, tmp_path, monkeypatch):
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store for local use
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "aimed-test")
    run = tmp_path / "run"
    code, out, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq,demo_medterm", "--limit", "4",
                         "--output_dir", run, "--no_index", "--no_cache", "--quiet", "--log_to", "mlflow",
                         "--meta", "stage=sft,base_model=tiny,step=20")
    assert code == 0, err
    run_id = out.split("logged to MLflow: run ")[1].split()[0]
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    logged = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri()).get_run(run_id)
    assert logged.data.params["fingerprint"] == results["aimed"]["model"]["fingerprint"]
    assert (logged.data.params["stage"], logged.data.params["base_model"], logged.data.params["step"]) == \
        ("sft", "tiny", "20")
    assert logged.data.metrics["demo_mcq/acc"] == results["results"]["demo_mcq"]["acc,none"]
    assert logged.data.metrics["demo_medterm/rougeL_stderr"] == results["results"]["demo_medterm"]["rougeL_stderr,none"]
    assert logged.data.tags["aimed.run_id"] == results["aimed"]["run_id"]
    artifacts = Path(logged.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "results.json").is_file() and (artifacts / "samples_demo_mcq.jsonl").is_file()


def test_a_tracker_that_refuses_is_one_line_and_the_run_is_kept(cli, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:hunter2@127.0.0.1:1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run = tmp_path / "run"
    code, out, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--limit", "2", "--output_dir", run,
                         "--no_index", "--no_cache", "--quiet", "--log_to", "mlflow")
    assert code == 2 and "--log_to mlflow" in err and "is complete" in err and "hunter2" not in err
    assert len(err.strip().splitlines()) == 1 and (run / "results.json").is_file()
