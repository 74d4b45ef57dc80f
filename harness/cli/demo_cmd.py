"""``aimed-eval demo``: the Quick start's main job on a built-in default.

Builds a tiny model (a tokenizer trained on the bundled demo data and a small random
Llama), scores it on the bundled demo tasks and prints the scores. Nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..cache import default_cache_dir
from ..evaluate import evaluate
from ..models.args import ModelArgs
from ..runner import RunOptions
from ..taskregistry import resolve_tasks
from .summary import print_summary


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="build a tiny model and score it on the bundled demo tasks")
    p.add_argument("--out", type=Path, default=Path("demo_runs"), help="folder for the model and the run")
    p.add_argument("--tasks", default="demo", help="tasks to score (default: demo, the bundled group)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=demo)


def demo_texts(task_names: str) -> list[str]:
    texts = []
    for task in resolve_tasks(task_names):
        for s in task.samples():
            texts.append("\n".join([s.question, *s.options.values(), s.target, "答案：" + "".join(s.answer)]))
    return texts


def demo(ns: argparse.Namespace) -> int:
    from ..tinymodel import build_tiny_model

    model_dir = ns.out / "tiny-llama"
    if not (model_dir / "config.json").exists():
        print(f"building a tiny Llama in {model_dir} ...")
        build_tiny_model(model_dir, demo_texts(ns.tasks), arch="llama", seed=0)
    run_dir = ns.out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    result = evaluate(ModelArgs(model=str(model_dir)), [ns.tasks], RunOptions(progress=not ns.quiet),
                      output_dir=run_dir, cache_dir=default_cache_dir())
    print_summary(result.results)
    print(f"run folder: {result.run_dir}")
    return 0
