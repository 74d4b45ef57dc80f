"""``aimed-eval pipeline --config pipeline.yaml``: train PT → SFT → RM → PPO → DPO (or a
subset) for each base model, score every checkpoint, and gate each stage before the next.

Exit codes: 0 every base model's line ran to its last stage; 1 the gate stopped a line
(each stop is named, the other lines went on); 2 bad input. Rerun the same command to
resume: finished stages (result and gate decision recorded in
``<output_root>/pipeline_state.json``) are not redone.

Registered through the ``aimed.commands`` entry point; this module imports nothing heavy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aimed.harness.help_text import user_help


def add_parser(sub) -> None:
    p = sub.add_parser("pipeline", help="train PT -> SFT -> RM -> PPO -> DPO per base model, gating each stage",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="pipeline.yaml (see trainers/demo_data/pipeline.yaml)")
    p.add_argument("--output_root", type=Path, default=None, help="override the file's output_root")
    p.add_argument("--stages", default=None, help="override the file's stage list (comma-separated, in order)")
    p.add_argument("--base_models", default=None, help="run only these base models of the file (comma-separated)")
    p.set_defaults(func=run)


def _names(text):
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def run(ns: argparse.Namespace) -> int:
    from .pipeline import run_pipeline, summary_lines
    from .pipeline_config import load_pipeline

    config = load_pipeline(ns.config, output_root=ns.output_root, stages=_names(ns.stages),
                           only=_names(ns.base_models))
    outcome = run_pipeline(config)
    print("\n".join(["", "pipeline:", *summary_lines(outcome),
                     f"state: {config.state_file}", f"index: {config.index_db}",
                     f"leaderboard: aimed-eval leaderboard --db {config.index_db}",
                     f"report: aimed-eval report --db {config.index_db} --out {config.output_root / 'report.html'}"]))
    return outcome.exit_code
