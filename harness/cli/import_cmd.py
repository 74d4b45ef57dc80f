"""``aimed-eval import PATH...``: record existing runs into the results index.

A PATH is an aimed-eval run folder (it holds ``results.json``), an lm-evaluation-harness
results file (``results_*.json``), or a folder searched for either (lm-eval writes
``<output_path>/<model>/results_<date>.json``). Importing a run again replaces its record.
Every PATH is read and checked before anything is written, so a bad one leaves the index
as it was.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path

from .. import flag_types
from ..errors import UserError
from ..help_text import user_help
from ..index import DB_ENV, DB_NAME, connect, default_db, index_fault, record_run, where
from ..index_lookup import remember_index
from ..lm_eval_results import LM_EVAL_GLOB, is_lm_eval_results, record_lm_eval
from .run_cmd import parse_meta


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="record aimed-eval run folders and lm-eval results files in the index",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="run folder, lm-eval results_*.json, or a folder holding them")
    p.add_argument("--db", type=flag_types.db_path, default=None,
                   help=f"results index (default: ${DB_ENV}, else {DB_NAME} in the output root of the first PATH)")
    p.add_argument("--meta", default="", help="labels for lm-eval runs of checkpoints without "
                   "aimed_checkpoint.json: stage=sft,base_model=qwen2-7b,parent=PATH,step=200")
    p.set_defaults(func=run)


def _load(f: Path) -> dict:
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{f}: not valid JSON ({exc}); give an aimed-eval results.json or an "
                        "lm-eval results_*.json") from None
    except OSError as exc:
        raise UserError(f"{f}: cannot read it ({exc.strerror})") from None
    if isinstance(data, dict) and "aimed" in data:
        if not isinstance(data["aimed"], dict) or not data["aimed"].get("run_id") \
                or not isinstance(data.get("results"), dict):
            raise UserError(f"{f}: an aimed-eval results.json without 'aimed.run_id' or 'results'; "
                            "the run folder is damaged: score it again")
        return data
    if not is_lm_eval_results(data):
        raise UserError(f"{f}: not a results file (no 'results' with 'configs' or 'versions'); give an "
                        "aimed-eval run folder or an lm-eval results_*.json")
    if not any("," in key for block in data["results"].values() if isinstance(block, dict) for key in block):
        raise UserError(f"{f}: no task metrics in 'results'; give the results file of a finished lm-eval run")
    return data


def default_root(path: Path) -> Path:
    """Where the index goes by default: the output root, as for `aimed-eval run`."""
    path = path.resolve()
    if path.is_file():
        return path.parent.parent if path.name == "results.json" else path.parent
    return path.parent if (path / "results.json").is_file() else path


def find_results(path: Path) -> list[Path]:
    """The results files a PATH stands for."""
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; give a run folder or an lm-eval results_*.json")
    if path.is_file():
        return [path]
    if (path / "results.json").is_file():
        return [path / "results.json"]
    found = sorted({*path.rglob("results.json"), *path.rglob(LM_EVAL_GLOB)})
    if not found:
        raise UserError(f"{path}: holds no results.json or {LM_EVAL_GLOB}; give a run folder or "
                        "an lm-eval output folder")
    return found


def run(ns: argparse.Namespace) -> int:
    meta = parse_meta(ns.meta)
    files = [f for p in ns.paths for f in find_results(p)]
    loaded = [(f, _load(f)) for f in files]  # all checked before the index is touched
    db_path = ns.db or default_db(default_root(ns.paths[0]))
    db = connect(db_path)
    try:
        for f, data in loaded:
            if "aimed" in data:
                run_id = record_run(db, f.parent, data)
                print(f"imported aimed-eval run {run_id} from {f.parent}")
            else:
                run_id = record_lm_eval(db, f, data, meta)
                print(f"imported lm-eval run {run_id} from {f}")
    except sqlite3.DatabaseError as exc:  # each run is one transaction: those printed are recorded
        raise index_fault(db_path, exc) from None
    finally:
        db.close()
    remember_index(db_path)  # leaderboard, report and dashboard find it without --db
    print(f"{len(loaded)} run(s) recorded in {where(db_path)}")
    return 0
