"""``run --log_to mlflow``: each run in the team's experiment tracker too.

The tracking URI comes from MLflow's own environment variable (``MLFLOW_TRACKING_URI``;
unset: MLflow's default, ``./mlruns``), the experiment from ``MLFLOW_EXPERIMENT_NAME``
(default ``aimed-eval``). A run logs:

- params: the model (path, adapters, template, dtype), its fingerprint, its lineage (base
  model, stage, parent, step), the tasks and the scoring options;
- metrics: every ``task/metric`` of results.json and its standard error
  (``task/metric_stderr``), groups included;
- artifacts: the run folder (``results.json`` and the samples files);
- tags: the harness's run id and the run folder.

The run folder and the index are written first: a tracker that cannot be reached costs
the tracking, not the run (one line says so).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .flag_types import without_password

EXPERIMENT_ENV, DEFAULT_EXPERIMENT = "MLFLOW_EXPERIMENT_NAME", "aimed-eval"
TARGETS = ("mlflow",)


def params_of(results: dict) -> dict[str, str]:
    aimed = results.get("aimed", {})
    model = aimed.get("model", {})
    args = model.get("args", {})
    manifest = model.get("manifest") or {}
    meta = aimed.get("meta") or {}
    lineage = {k: manifest.get(k, meta.get(k)) for k in ("base_model", "stage", "parent", "step")}
    options = aimed.get("options", {})
    judge = (aimed.get("judge") or {}).get("judge") or {}
    out = {"model": args.get("model"), "lora_model": ",".join(args.get("lora_model") or []),
           "template_name": args.get("template_name"), "dtype": model.get("dtype"),
           "fingerprint": model.get("fingerprint"), **lineage,
           "tasks": ",".join(aimed.get("tasks", {})), "mode": options.get("mode"),
           "num_fewshot": options.get("num_fewshot"), "limit": (results.get("config") or {}).get("limit"),
           "seed": (results.get("config") or {}).get("random_seed"), "judge": judge.get("model")}
    return {k: str(v)[:500] for k, v in out.items() if v not in (None, "")}


def metrics_of(results: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for task, block in results.get("results", {}).items():
        for key, value in block.items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
                continue
            metric, filt = key.split(",", 1)
            name = metric if filt == "none" else f"{metric}_{filt}"
            out[f"{task}/{name}"] = float(value)
    return out


def log_to_mlflow(run_dir: Path, results: dict) -> str:
    """Log one run; its MLflow run id."""
    try:
        import mlflow
    except ImportError:
        raise UserError('--log_to mlflow: needs mlflow, which is not installed: pip install "aimed-eval[mlflow]" '
                        "(the run folder is complete)") from None
    uri = mlflow.get_tracking_uri()
    aimed = results.get("aimed", {})
    label = Path(str(aimed.get("model", {}).get("args", {}).get("model", "run")).rstrip("/")).name
    try:
        mlflow.set_experiment(os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
        with mlflow.start_run(run_name=label) as run:
            mlflow.log_params(params_of(results))
            mlflow.log_metrics(metrics_of(results))
            mlflow.set_tags({"aimed.run_id": aimed.get("run_id", ""), "aimed.run_dir": str(Path(run_dir).resolve())})
            mlflow.log_artifacts(str(run_dir))
            return run.info.run_id
    except Exception as exc:  # noqa: BLE001 - the tracker's fault, said in one line; the run is safe
        first = without_password((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:300]
        raise UserError(f"--log_to mlflow: the tracker at {without_password(uri)} refused the run ({first}); the "
                        f"run folder {run_dir} is complete") from None
