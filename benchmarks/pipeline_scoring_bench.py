"""A pipeline's checkpoint scoring inline vs beside training (``scoring:``, issue 17).

Builds one tiny Llama (``--hidden``/``--layers``; a tokenizer trained on the demo texts)
and times the same one-stage pipeline (sft on the demo's SFT file, ``--steps`` steps, a
checkpoint every ``--save_steps``, each scored on ``--tasks``) as a subprocess, as a user
runs it, with a fresh output folder each time:

- inline: ``scoring: {executor: inline}`` (the default: training waits for each score);
- beside: ``scoring: {executor: local, workers: 1}`` (one scoring process beside training;
  the base model is scored while the stage trains).

The two run in turn for ``--rounds`` rounds, each round starting with the other, so a busy
spell of a shared machine does not land on one of them. Prints every round, the median
wall times, their ratio, each pipeline's scores (they must be equal), and the load average
before and after. On a machine of two cores scoring and training compete for the same
cores; beside-training scoring pays where scoring has its own GPU or machine.

    python benchmarks/pipeline_scoring_bench.py [--steps 40] [--save_steps 10] [--tasks demo] [--limit N]
        [--rounds 3] [--hidden 64 --layers 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "trainers" / "demo_data"


def build_model(work: Path, hidden: int, layers: int) -> Path:
    from aimed.harness.tinymodel import build_tiny_model
    from aimed.trainers.demo_cmd import demo_texts

    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):
        shutil.copyfile(DEMO / name, work / name)
    folder = work / "models" / "tiny"
    build_tiny_model(folder, demo_texts(work), arch="llama", seed=0, max_positions=512, hidden_size=hidden, layers=layers)
    return folder


def pipeline(ns: argparse.Namespace, scoring: dict) -> dict:
    return {
        "output_root": "out",
        "base_models": [{"name": "tiny", "model": "models/tiny"}],
        "stages": ["sft"],
        "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0},
        "stage_config": {"sft": {"train_files": ["sft.jsonl"], "max_length": 160, "learning_rate": 5.0e-3,
                                 "max_steps": ns.steps, "save_steps": ns.save_steps,
                                 "per_device_train_batch_size": 8}},
        "eval": {"tasks": ns.tasks.split(","), **({"limit": ns.limit} if ns.limit else {})},
        "stage_gates": {"sft": {"rules": {"*": {"*": {"max_drop": 5.0}}}}},
        "scoring": scoring,
    }


def time_one(work: Path, name: str, data: dict) -> tuple[float, dict]:
    root = work / f"run-{name}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for item in ("models", "sft.jsonl"):
        (root / item).symlink_to(work / item)
    (root / "pipeline.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "aimed.harness.cli", "pipeline", "--config", "pipeline.yaml"],
                          cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{name}: exit {done.returncode}\n{done.stderr[-2000:]}")
    state = json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))
    stage = state["lines"]["tiny"]["stages"]["sft"]
    scores = {}
    for ckpt in stage["checkpoints"]:
        results = json.loads((Path(ckpt["run_dir"]) / "results.json").read_text(encoding="utf-8"))["results"]
        scores[ckpt["step"]] = {f"{task}/{key[:-5]}": value for task, block in results.items()
                                for key, value in block.items() if key.endswith(",none") and "stderr" not in key}
    return seconds, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--save_steps", type=int, default=10)
    ap.add_argument("--tasks", default="demo")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    ns = ap.parse_args()
    work = ns.work or Path(tempfile.mkdtemp(prefix="aimed-pipeline-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    build_model(work, ns.hidden, ns.layers)
    print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    kinds = {"inline": {"executor": "inline"}, "beside": {"executor": "local", "workers": 1}}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    scores: dict[str, dict] = {}
    for r in range(ns.rounds):
        order = list(kinds) if r % 2 == 0 else list(kinds)[::-1]
        for name in order:
            seconds, scores[name] = time_one(work, name, pipeline(ns, kinds[name]))
            times[name].append(seconds)
            print(f"round {r + 1}: {name:<7} {seconds:7.2f} s")
    inline, beside = statistics.median(times["inline"]), statistics.median(times["beside"])
    print(f"median: inline {inline:.2f} s, beside {beside:.2f} s; beside / inline = {beside / inline:.2f}")
    print(f"{len(scores['inline'])} checkpoints; scores equal: {scores['inline'] == scores['beside']}")
    print(f"load average after: {os.getloadavg()}")
    if ns.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
