"""``aimed-eval compare RUN_A RUN_B``: per task and metric, B - A with a paired bootstrap
interval and a paired test; per-category deltas; the items that flipped."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import flag_types
from ..flags.judge import add_judge_flags, judge_config, open_judge


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="compare two run folders item by item (delta = B - A)")
    p.add_argument("run_a", type=Path, help="run folder A (the reference)")
    p.add_argument("run_b", type=Path, help="run folder B")
    p.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    p.add_argument("--n_boot", type=int, default=2000, help="bootstrap resamples and permutations (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level; the interval is 1 - alpha")
    p.add_argument("--flips", type=flag_types.non_negative_int, default=10, metavar="N",
                   help="flipped items listed per task in table/markdown (json lists all)")
    p.add_argument("--out", type=Path, default=None, help="write to FILE instead of the terminal")
    add_judge_flags(p, "the two runs' answers to each item, in both orders (pairwise; the default rubric: "
                       "pairwise)", with_cache=True)
    p.set_defaults(func=compare)


def compare(ns: argparse.Namespace) -> int:
    from ..compare import compare_runs
    from ..compare_format import render_markdown, render_text
    from ..errors import UserError
    from ..results import atomic_write_text

    if ns.out is not None and not ns.out.parent.is_dir():
        raise UserError(f"--out {ns.out}: folder {ns.out.parent} does not exist; create it or choose another file")
    config = judge_config(ns)
    c = compare_runs(ns.run_a, ns.run_b, n_boot=ns.n_boot, seed=ns.seed, alpha=ns.alpha)
    if config is not None:
        _judge_pairs(c, ns, config)
    if ns.format == "json":
        text = json.dumps(c.to_dict(), ensure_ascii=False, indent=2) + "\n"
    elif ns.format == "markdown":
        text = render_markdown(c, ns.flips)
    else:
        text = render_text(c, ns.flips)
    if ns.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(ns.out, text)
        print(f"wrote {ns.out}")
    return 0


def _judge_pairs(c, ns: argparse.Namespace, config) -> None:
    """The judge's pairwise rows, added to the comparison ``c``."""
    from contextlib import ExitStack

    from ..errors import UserError
    from ..judge.pairwise import judge_pairs, pairwise_rubric, text_tasks
    from ..runfolder import read_run

    ra, rb = read_run(ns.run_a), read_run(ns.run_b)
    tasks = text_tasks(ra, rb)
    if not tasks:
        raise UserError(f"--judge: {ns.run_a} and {ns.run_b} share no item answered in text (generation tasks, or "
                        "multiple choice in --mode generate); there is nothing for a judge to compare")
    pairwise_rubric(config.rubric)  # a misnamed rubric fails before the judge is reached
    with ExitStack() as stack:
        judge = open_judge(config.model_copy(update={"rubric": None}), ns, stack)
        c.pairwise, cost = judge_pairs(ra, rb, tasks, judge, config.rubric, ns.n_boot, ns.seed, ns.alpha)
    c.judge = {"judge": judge.describe(), **cost}
