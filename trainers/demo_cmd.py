"""``aimed-eval demo``: the whole loop on a tiny model. Measured: 52 s on a 2-core machine
that another job shared (load average 0.3 rising to 1.5); it takes longer the busier the
machine is.

1. copies the bundled demo data (raw medical text, SFT instructions, preference pairs, the
   pipeline.yaml and gates.yaml: ``trainers/demo_data/``) into ``--out``;
2. builds a tiny base model there: a byte-level BPE tokenizer trained on that text and a
   small random Llama (nothing is downloaded);
3. runs the pipeline PT → SFT → RM → PPO → DPO: every checkpoint is scored on the demo
   tasks as it is saved and recorded in the results index, and the gate promotes a
   checkpoint of each stage or stops the line;
4. prints the leaderboard and writes the HTML report (with the gate decisions).

Run it again with the same ``--out``: nothing is redone, the finished pipeline is shown.
It ends with the commands to go on with: the report, the dashboard, a compare and a gate
of two of its runs.

Registered through the ``aimed.commands`` entry point; this module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

from aimed.harness.help_text import user_help

DATA_FILES = ("pretrain.txt", "sft.jsonl", "preference.jsonl", "pipeline.yaml", "gates.yaml")
BASE_NAME = "tiny-llama"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="train a tiny model PT -> SFT -> RM -> PPO -> DPO, gate each stage, report",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("aimed_demo"), help="folder for everything (default: aimed_demo)")
    p.set_defaults(func=demo)


def demo_texts(data: Path) -> list[str]:
    """The text the tiny tokenizer learns: every bundled file, and the demo tasks' items."""
    import json

    from aimed.harness.taskregistry import resolve_tasks

    texts = (data / "pretrain.txt").read_text(encoding="utf-8").splitlines()
    for name in ("sft.jsonl", "preference.jsonl"):
        for line in (data / name).read_text(encoding="utf-8").splitlines():
            texts += [v for v in json.loads(line).values() if isinstance(v, str)]
    for task in resolve_tasks(["demo"]):
        for s in task.samples():
            texts.append("\n".join([s.question, *s.options.values(), s.target]))
    return [t for t in texts if t.strip()]


def prepare(out: Path) -> Path:
    """The demo folder: the bundled data copied in, and the tiny base model built once."""
    import shutil

    from aimed.harness.errors import UserError
    from aimed.harness.owned import check_target, write_marker

    # a rerun goes on in its own demo folder; any other folder with files in it is refused
    check_target(out, what="--out", kind="demo", overwrite=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "demo")
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror}); choose a folder you can write to") from None
    bundled = Path(__file__).resolve().parent / "demo_data"
    for name in DATA_FILES:
        if not (out / name).exists():  # an edited copy is kept: rerun with your changes
            shutil.copyfile(bundled / name, out / name)
    model = out / BASE_NAME
    if not (model / "config.json").exists():
        from aimed.harness.tinymodel import build_tiny_model

        print(f"building the tiny base model in {model} (tokenizer trained on the demo text, random Llama) ...")
        build_tiny_model(model, demo_texts(out), arch="llama", seed=0, hidden_size=64, layers=2, vocab_size=1200,
                         max_positions=512)
    return out / "pipeline.yaml"


def demo(ns: argparse.Namespace) -> int:
    from aimed.harness.cli import main as cli

    from .pipeline import quiet_libraries, run_pipeline, summary_lines
    from .pipeline_config import check_installed, load_pipeline

    check_installed(("trl", "datasets", "accelerate", "plotly"), "training,report", "aimed-eval demo")
    quiet_libraries()  # before the tiny model is built and saved
    started = time.perf_counter()
    config = load_pipeline(prepare(ns.out), output_root=ns.out)
    outcome = run_pipeline(config)
    print("\n== what the gate decided ==")
    print("\n".join(summary_lines(outcome)))
    print("\n== leaderboard (aimed-eval leaderboard --db " f"{config.index_db}) ==")
    code = cli(["leaderboard", "--db", str(config.index_db)])
    report = config.output_root / "report.html"
    code = code or cli(["report", "--db", str(config.index_db), "--out", str(report)])
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print("\n".join(next_steps(config, outcome, report)), flush=True)
    return code or (2 if outcome.exit_code == 2 else 0)


def compared_pair(outcome) -> Optional[tuple[str, str, str]]:
    """(stage, its parent's run, its promoted checkpoint's run) of the stage with the most to
    show: SFT (the gain the demo is built to have), else the first promoted stage."""
    from aimed.harness.verdicts import DecisionKind

    for line in outcome.lines.values():
        promoted = [(s, r) for s, r in line.stages.items()
                    if r.decision is not None and r.decision.kind == DecisionKind.GATE and r.decision.go_on]
        for stage, rec in sorted(promoted, key=lambda sr: sr[0] != "sft"):
            if rec.parent_run and rec.decision.promoted_run:
                return stage, rec.parent_run, rec.decision.promoted_run
    return None


def next_steps(config, outcome, report: Path) -> list[str]:
    """The exact commands to go on with, on this demo's own index and runs."""
    from shlex import quote

    from aimed.leaderboards.dashboard_cmd import INSTALL

    db = quote(str(config.index_db))
    lines = ["", "== next steps ==",
             f"the report (open it in a browser):  {report}",
             f"the dashboard (its extra once: {INSTALL}):",
             f"  aimed-eval dashboard --db {db}"]
    pair = compared_pair(outcome)
    if pair is not None:
        parent_run, run = quote(pair[1]), quote(pair[2])
        policy = quote(str(config.path.parent / "gates.yaml"))
        lines += [f"compare {pair[0]}'s promoted checkpoint (B) with its parent (A), item by item:",
                  f"  aimed-eval compare {parent_run} {run}",
                  "gate it against its parent (exit 1 on a regression):",
                  f"  aimed-eval gate --baseline {parent_run} --candidate {run} --policy {policy}"]
    lines += ["edit the stages and rerun (only what changed is redone):",
              f"  aimed-eval pipeline --config {quote(str(config.path))}"]
    return lines
