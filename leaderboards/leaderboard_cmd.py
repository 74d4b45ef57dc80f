"""``aimed-eval leaderboard``: the results index as a table.

One row a checkpoint (its latest run), grouped by base model and stage; one column a
task (its main metric) and the headline number: the suite score when a suite such as
medqa was run (its members' columns shown; --all_metrics shows every subject and metric),
else the mean of the task columns; ★ marks the best checkpoint of each stage on it.
``--progression`` shows score against training step, stage after stage.

Imported at every start of the CLI (entry point ``aimed.commands``), so the module itself
imports nothing heavy; the query and the renderers load when the command runs.
"""

from __future__ import annotations

import argparse

from aimed.harness import flag_types
from aimed.harness.help_text import user_help
from aimed.harness.index_lookup import LOOKUP_HELP

FORMATS = ("table", "markdown", "csv", "json")


def add_parser(sub) -> None:
    p = sub.add_parser("leaderboard", help="checkpoints by base model and stage, one column a task",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=flag_types.db_path, default=None, help=LOOKUP_HELP)
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--base_model", action="append", default=None, metavar="NAME",
                   help="only these base models (comma-separated or repeated)")
    p.add_argument("--stage", action="append", default=None, metavar="STAGE",
                   help="only these stages: base, pt, sft, rm, ppo, dpo, ... (comma-separated or repeated)")
    p.add_argument("--tasks", action="append", default=None, metavar="NAME",
                   help="only these task or group columns, in this order (comma-separated or repeated)")
    p.add_argument("--all_metrics", action="store_true",
                   help="every task and subject column and every metric (default: the suite's members and "
                        "the suite score, one main metric each, to fit a terminal)")
    p.add_argument("--progression", action="store_true",
                   help="score against training step, stage after stage, per base model")
    p.set_defaults(func=run)


def _names(values):
    if not values:
        return None
    return [n.strip() for v in values for n in v.split(",") if n.strip()] or None


def run(ns: argparse.Namespace) -> int:
    import json
    import sys

    from aimed.harness.index_lookup import find_index

    from . import query, table

    db = query.open_index(find_index(ns.db))
    try:
        filters = dict(base_models=_names(ns.base_model), stages=_names(ns.stage), tasks=_names(ns.tasks))
        if ns.progression and ns.format in ("csv", "json"):
            rows = query.progression(db, **filters)
            if ns.format == "json":
                text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
            else:
                import csv
                import io

                buf = io.StringIO()
                fields = ["base_model", "stage", "stage_index", "step", "x", "checkpoint", "task", "metric",
                          "value", "stderr", "run_id"]
                w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
                text = buf.getvalue()
        else:
            board = query.leaderboard(db, **filters)
            if ns.progression:
                text = table.render_progression(board)
                if ns.format == "markdown":
                    text = "```\n" + text + "```\n"
            elif ns.all_metrics and ns.format in table.TAKES_ALL_METRICS:
                text = table.RENDERERS[ns.format](board, query.all_scores(db, [r.run_id for r in board.rows]))
            else:
                text = table.RENDERERS[ns.format](board)
    finally:
        db.close()
    sys.stdout.write(text)
    return 0
