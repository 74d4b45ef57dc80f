"""``aimed-eval run``: score a checkpoint on tasks and write a run folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..cache import default_cache_dir
from .. import flag_types
from ..errors import UserError
from ..distributed import finish, world
from ..evaluate import default_output_dir, iter_runs
from ..flags.backend import add_backend_flags, backend_options
from ..flags.judge import add_judge_flags, judge_config
from ..flags.model import add_model_flags, model_args
from ..flags.scoring import add_prompt_flags, check_scoring_flags
from ..help_text import user_help
from ..index import DB_ENV, connect, default_db, index_fault, record_run_dir, where
from ..index_lookup import remember_index
from ..index_pg import is_pg_url
from ..models.adapters import plan_runs, run_names
from ..models.backend import backend_kind, check_options
from ..owned import protected_reason
from ..contamination.scan import DEFAULT_N, DEFAULT_THRESHOLD
from ..runner import RunOptions
from ..scoring.score import CLOZE_NORMS
from .summary import print_summary
from .tasks_cmd import SKIP_HELP, SkipBadRows


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="score a checkpoint on tasks", description=user_help(__doc__))
    add_model_flags(p, several=True)
    add_backend_flags(p)
    p.add_argument("--tasks", default="medqa", help="tasks, groups or spec files, comma-separated "
                   "(default: medqa, the suite)")
    p.add_argument("--cloze_norm", choices=CLOZE_NORMS, default=None,
                   help="cloze mode's length normalisation (default: char)")
    add_prompt_flags(p)
    p.add_argument("--contamination_data", nargs="+", default=[], metavar="FILE",
                   help="training files the checkpoint was trained on: each item's overlap with them is recorded "
                        "and every metric is reported on the clean subset too (acc_clean, contaminated); "
                        "see docs/contamination.md")
    p.add_argument("--contamination_ngram", type=int, default=None, metavar="N",
                   help=f"n-gram length in characters for --contamination_data (default {DEFAULT_N['char']})")
    p.add_argument("--contamination_threshold", type=float, default=None, metavar="T",
                   help=f"share of an item's n-grams found that flags it, 0..1 (default {DEFAULT_THRESHOLD})")
    add_judge_flags(p)
    p.add_argument("--batch_size", default="auto", help="N or auto")
    p.add_argument("--output_dir", type=Path, default=None, help="run folder (default: aimed_runs/<model>-<time>); with several "
                   "adapters, the folder that holds one run folder an adapter")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    p.add_argument("--cache_dir", type=Path, default=None,
                   help="response cache folder (default: $AIMED_CACHE or ~/.cache/aimed-eval)")
    p.add_argument("--no_cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--meta", default="", help="labels for a checkpoint without aimed_checkpoint.json: "
                   "stage=sft,base_model=qwen2-7b,parent=PATH,step=200")
    p.add_argument("--db", type=flag_types.db_path, default=None, help="results index to record the run in (default: "
                   f"${DB_ENV}, else aimed_index.sqlite in the run folder's parent)")
    p.add_argument("--no_index", action="store_true", help="do not record the run in the results index")
    p.add_argument("--log_to", choices=("mlflow",), default=None,
                   help="also log the run's params, metrics and folder to MLflow (tracking URI from "
                        "$MLFLOW_TRACKING_URI, experiment from $MLFLOW_EXPERIMENT_NAME, default aimed-eval)")
    p.add_argument("--skip_bad_rows", action=SkipBadRows, help=SKIP_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    check_scoring_flags(ns)
    if (ns.contamination_ngram is not None or ns.contamination_threshold is not None) and not ns.contamination_data:
        raise UserError("--contamination_ngram/--contamination_threshold: apply to --contamination_data FILE; "
                        "give the training files or drop them")
    if ns.contamination_data:
        from ..contamination.scan import check_settings

        try:
            check_settings(ns.contamination_ngram, "char", DEFAULT_THRESHOLD if ns.contamination_threshold is None
                           else ns.contamination_threshold)
        except UserError as exc:
            raise UserError("--contamination_" + exc.message.lstrip("-")) from None
    if ns.quiet:  # transformers' own "Loading weights" bars too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    args = model_args(ns)
    opts = RunOptions(mode=ns.mode, num_fewshot=ns.num_fewshot, limit=ns.limit, seed=ns.seed,
                      cloze_norm=ns.cloze_norm, progress=not ns.quiet, circular=ns.circular,
                      contamination_data=tuple(ns.contamination_data), contamination_ngram=ns.contamination_ngram,
                      contamination_threshold=ns.contamination_threshold, judge=judge_config(ns))
    names = [t.strip() for t in ns.tasks.split(",") if t.strip()]
    meta = parse_meta(ns.meta)
    kind, options = backend_kind(ns.backend), backend_options(ns)
    check_options(kind, options)
    # several adapters are several runs on one loaded base; a server's model is one run
    runs = plan_runs(args) if kind.local_weights else [args]
    output_dirs = run_folders(runs, ns.output_dir)
    db_path = None if ns.no_index else (ns.db or default_db(output_dirs[0].parent))
    cache_dir = None if ns.no_cache else (ns.cache_dir or default_cache_dir())
    check_outside_runs(output_dirs, {"--db": db_path, "--cache_dir": cache_dir})
    if db_path is not None and (is_pg_url(db_path) or db_path.exists()):  # a bad --db fails now, not after
        connect(db_path).close()                                            # the (slow) run
    if kind.preflight:
        kind.preflight()  # a missing package is said before any other work
    if ns.gpus:  # before the process group touches CUDA
        os.environ["CUDA_VISIBLE_DEVICES"] = ns.gpus
    procs = world()
    if procs.size > 1 and not kind.data_parallel:
        finish(ok=False)
        raise UserError(f"--backend {ns.backend}: data-parallel launches are for --backend hf; run one process "
                        "(vLLM and servers batch across requests themselves)")
    ok = False
    created = _missing_folders(output_dirs)
    try:
        for result in iter_runs(runs, names, opts, output_dirs, cache_dir=cache_dir, use_cache=not ns.no_cache,
                                overwrite=ns.overwrite, backend=ns.backend, backend_options=options, meta=meta):
            if not procs.is_main:  # data-parallel launches: rank 0 alone prints and records
                continue
            if len(runs) > 1:
                print(f"== {result.results['config']['model_args']}")
            print_summary(result.results)
            print(f"run folder: {result.run_dir}")
            for task, info in result.results["aimed"].get("predict_only", {}).items():
                if info.get("submission"):
                    print(f"submission for {task} ({info['format']} format, {info['items']} items): "
                          f"{result.run_dir / info['submission']}")
            if db_path is not None:
                record(db_path, result.run_dir, result.results)
            if ns.log_to == "mlflow":
                from ..tracking import log_to_mlflow

                print(f"logged to MLflow: run {log_to_mlflow(result.run_dir, result.results)}")
            if os.environ.get("AIMED_PRINT_TIMINGS"):
                print(result.results["aimed"]["timings"])
        ok = True
    finally:
        finish(ok)
        if not ok:
            _remove_empty(created)
    return 0


def _missing_folders(output_dirs: list[Path]) -> list[Path]:
    """The folders above the run folders that do not exist yet (deepest first): the run
    creates them, and a run that fails takes back those it left empty (``aimed_runs/``)."""
    missing: list[Path] = []
    for out in output_dirs:
        folder = Path(out).expanduser().absolute().parent
        while not folder.exists() and folder not in missing:
            missing.append(folder)
            folder = folder.parent
    return sorted(missing, key=lambda p: len(p.parts), reverse=True)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # rmdir only: a folder that holds anything stays
        try:
            folder.rmdir()
        except OSError:
            pass


def run_folders(runs: list, output_dir: Path | None) -> list[Path]:
    """One run folder: ``--output_dir`` itself. Several adapters: a subfolder of it each."""
    if len(runs) == 1:
        return [output_dir or default_output_dir(runs[0].model)]
    root = output_dir or default_output_dir(runs[0].model)
    return [root / name for name in run_names(runs)]


def check_outside_runs(output_dirs: list[Path], others: dict) -> None:
    """The index and the cache live outside the run folders: a run folder is replaced whole
    by a rerun with --overwrite, which would take them with it."""
    for flag, path in others.items():
        if path is None or is_pg_url(path):
            continue
        here = Path(path).expanduser().resolve()
        for out in output_dirs:
            if protected_reason(out):  # refused as an output folder anyway, with its own reason
                continue
            if here == out.resolve() or out.resolve() in here.parents:
                raise UserError(f"{flag} {path}: is inside the run folder {out}, which a rerun replaces whole; "
                                "put it beside the run folder instead")


def record(db_path, run_dir: Path, results: dict) -> None:
    import sqlite3

    try:
        record_run_dir(db_path, run_dir, results)
    except (sqlite3.Error, OSError, UserError) as exc:  # e.g. locked past the busy timeout: the run is safe
        reason = exc.message if isinstance(exc, UserError) else index_fault(db_path, exc).message
        raise UserError(f"{reason}; the run folder {run_dir} is complete: record it with "
                        f"`aimed-eval import {run_dir} --db {where(db_path)}`") from None
    remember_index(db_path)  # leaderboard, report and dashboard find it without --db
    print(f"recorded in index: {where(db_path)}")


META_KEYS = ("stage", "base_model", "parent", "step")


def parse_meta(text: str) -> dict:
    meta: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in META_KEYS:
            raise UserError(f"--meta {part!r}: give key=value with key one of {', '.join(META_KEYS)}")
        if not value.strip():
            raise UserError(f"--meta {part!r}: {key} has no value; give {key}=VALUE or leave it out")
        if key == "step":
            if not value.isdigit():
                raise UserError(f"--meta step={value}: give a whole number of training steps")
            meta[key] = int(value)
        else:
            meta[key] = value
    return meta
