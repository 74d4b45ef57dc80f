"""``aimed-eval sweep``: score many checkpoints (a folder of them, a pipeline's output, a glob,
a list file) on the same tasks, each checkpoint an independent job: on a local process
pool (the default) or on a Ray cluster (``--executor ray --address HEAD:PORT``).

A checkpoint that the results index already holds with these tasks (same fingerprint,
task data and options) is skipped, so a sweep can be rerun after new checkpoints appear
or after a failure, and only the missing work is done. Every scored checkpoint gets a run
folder ``--output_dir/<checkpoint>-<hash>`` and is recorded in the index. A worker that
dies mid-job (killed, out of memory) is retried up to ``--retries`` times; a job that fails
does not stop the others.

The sweep ends with a table: each checkpoint, its status (scored, skipped, or failed and
why), its run folder and the seconds it took. Exit codes: 0 when every checkpoint was
scored or skipped; 2 when any failed (the table names each, and the last line counts
them), and for bad input (nothing matched, an unreachable cluster, a bad flag), which is
one line before any work. docs/sweep.md has the details, Ray clusters of several machines
included.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from .. import flag_types
from ..cache import default_cache_dir
from ..errors import UserError
from ..flags.scoring import add_prompt_flags, check_scoring_flags
from ..help_text import user_help
from ..index import DB_ENV, connect, default_db, where
from ..index_pg import is_pg_url
from ..index_lookup import remember_index
from ..models.args import ModelArgs
from ..owned import kind_of
from ..runner import RunOptions
from ..templates import RAW_TEMPLATE, template_names

DEFAULT_RETRIES = 2
DEFAULT_WORKERS = 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number above 0, e.g. 1 or 0.5") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give a number above 0, e.g. 1 or 0.5")
    return value


def _gpu_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share of one GPU from 0 to 1, e.g. 1 or 0.5") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: give a share of one GPU from 0 to 1 (a job scores on one GPU; "
                                         "0.5 puts two jobs on each)")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="score many checkpoints as independent jobs (local pool or a Ray cluster)",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, metavar="PATH",
                   help="checkpoint folders, folders holding checkpoints (a pipeline's output), globs such as "
                        "'out/*/sft/checkpoint-*', or text files listing one a line")
    p.add_argument("--tasks", default="medqa", help="tasks, groups or spec files, comma-separated (default: medqa)")
    g = p.add_argument_group("where the jobs run")
    g.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a pool of processes on this machine (default); ray: a Ray cluster "
                        "(pip install \"aimed-eval[ray]\")")
    g.add_argument("--address", default=None, help="--executor ray: the head node's HOST:PORT (what `ray start --head` "
                   "printed), or auto; default: $RAY_ADDRESS, else a cluster started on this machine, else a new one")
    g.add_argument("--connect_timeout", type=_positive_float, default=10.0, metavar="S",
                   help="seconds to wait for the Ray head to answer (default 10)")
    g.add_argument("--workers", type=flag_types.positive_int, default=None, metavar="N",
                   help=f"local pool: jobs at once (default {DEFAULT_WORKERS}; with --gpus_per_job, as many as "
                        "the GPUs hold)")
    g.add_argument("--cpus_per_job", type=_positive_float, default=None, metavar="C",
                   help="CPUs a job uses: Ray reserves them (default 1); the local pool gives torch that many threads "
                        "(default: this machine's CPUs shared among the workers)")
    g.add_argument("--gpus_per_job", type=_gpu_share, default=0.0, metavar="G",
                   help="share of a GPU a job uses, 0 to 1 (default 0: the CPU, or what --device says)")
    g.add_argument("--retries", type=flag_types.non_negative_int, default=DEFAULT_RETRIES, metavar="N",
                   help="times a job whose worker died (killed, out of memory) is run again "
                        f"(default {DEFAULT_RETRIES})")
    m = p.add_argument_group("model")
    m.add_argument("--template_name", default=RAW_TEMPLATE, choices=template_names(), metavar="NAME",
                   help=f"chat template: {', '.join(template_names())} (default: {RAW_TEMPLATE})")
    m.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="auto | float32 | bfloat16 | float16 (auto: bf16/fp16 on a GPU, fp32 on a CPU)")
    m.add_argument("--device", default="auto", type=flag_types.device, help="auto | cpu | cuda | cuda:N")
    m.add_argument("--trust_remote_code", action="store_true", help="allow the checkpoints' own Python code")
    m.add_argument("--allow_pickle", action="store_true", help="load pickle weights (*.bin, *.pt) of checkpoints "
                   "without safetensors; pickle can run code, so only for checkpoints you trust")
    add_prompt_flags(p)
    p.add_argument("--batch_size", default="auto", help="N or auto")
    p.add_argument("--output_dir", type=Path, default=Path("aimed_runs"),
                   help="folder that holds one run folder a checkpoint (default: aimed_runs)")
    p.add_argument("--db", type=flag_types.db_path, default=None,
                   help=f"results index: an SQLite file or postgresql://USER@HOST/DB (default: ${DB_ENV}, else "
                        "aimed_index.sqlite in --output_dir)")
    p.add_argument("--no_index", action="store_true", help="neither skip by nor record in the results index")
    p.add_argument("--cache_dir", type=Path, default=None,
                   help="response cache folder (default: $AIMED_CACHE or ~/.cache/aimed-eval)")
    p.add_argument("--no_cache", action="store_true", help="neither read nor write the response cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _check_flags(ns: argparse.Namespace) -> None:
    check_scoring_flags(ns)
    if ns.executor == "local" and ns.address:
        raise UserError("--address is for --executor ray; add --executor ray or drop --address")
    if ns.executor == "ray" and ns.workers is not None:
        raise UserError("--workers is for the local pool; on Ray, the cluster's CPUs and GPUs and --cpus_per_job / "
                        "--gpus_per_job decide how many jobs run at once")
    if ns.gpus_per_job and ns.device not in ("auto", "cuda"):
        raise UserError(f"--gpus_per_job with --device {ns.device}: a job's GPU is given to it; drop --device")
    if ns.executor == "ray" and ns.device.startswith("cuda") and not ns.gpus_per_job:
        raise UserError(f"--device {ns.device} on Ray: a job sees only the GPUs it reserves; add --gpus_per_job 1 "
                        "(or a share such as 0.5)")
    out = ns.output_dir.expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--output_dir {ns.output_dir}: is a file; give the folder that is to hold the run folders")
    blocking = next((p for p in out.absolute().parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UserError(f"--output_dir {ns.output_dir}: {blocking} is a file, so no folder can be made under it")
    inside = next((p for p in [out.absolute(), *out.absolute().parents]
                   if p.is_dir() and kind_of(p) in ("run", "merge")), None)
    if inside is not None:
        raise UserError(f"--output_dir {ns.output_dir}: is inside {inside}, a {kind_of(inside)} folder aimed-eval "
                        "wrote; give a folder outside it")


def _executor(ns: argparse.Namespace, jobs: int):
    if ns.executor == "ray":
        from ..sweep.ray_executor import RayExecutor

        executor = RayExecutor(ns.address, ns.cpus_per_job or 1.0, ns.gpus_per_job, ns.retries, ns.connect_timeout)
        executor.connect()
        return executor, max(1, int(ns.cpus_per_job or 1))
    from ..sweep.local import LocalExecutor, gpu_slots
    from ..sweep.specs import local_threads

    devices = gpu_slots(ns.gpus_per_job) if ns.gpus_per_job else None
    workers = min(ns.workers or (len(devices) if devices else DEFAULT_WORKERS), jobs)
    executor = LocalExecutor(workers, ns.retries, devices)
    return executor, local_threads(ns.cpus_per_job, executor.workers)


def run(ns: argparse.Namespace) -> int:
    from ..sweep import build_specs, check_tasks, failure_line, find_checkpoints, run_sweep, scored_fingerprints
    from ..sweep import table, verdict

    _check_flags(ns)
    checkpoints, left_out = find_checkpoints(ns.models)
    names = [t.strip() for t in ns.tasks.split(",") if t.strip()]
    opts = RunOptions(mode=ns.mode, num_fewshot=ns.num_fewshot, limit=ns.limit, seed=ns.seed, progress=False,
                      circular=ns.circular)
    tasks = check_tasks(names, opts)
    output_root = ns.output_dir.expanduser().absolute()
    db_path = None if ns.no_index else (ns.db or default_db(output_root))
    if db_path is not None and not is_pg_url(db_path):
        db_path = Path(db_path).expanduser().absolute()
    cache_dir = None if ns.no_cache else (ns.cache_dir or default_cache_dir()).expanduser().absolute()
    if db_path is not None and (is_pg_url(db_path) or db_path.exists()):  # a bad --db fails now, not after
        connect(db_path).close()                                            # every job has run
    known = scored_fingerprints(db_path, tasks, opts)
    executor, threads = _executor(ns, len(checkpoints))  # an unreachable cluster fails here, before any write
    try:
        output_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        executor.close()
        raise UserError(f"--output_dir {ns.output_dir}: cannot create it ({exc.strerror}); choose a folder you can "
                        "write to") from None
    model = ModelArgs(model="", template_name=ns.template_name, dtype=ns.dtype, device=ns.device,
                      trust_remote_code=ns.trust_remote_code, allow_pickle=ns.allow_pickle)
    specs = build_specs(checkpoints, names, tasks, opts, model, batch_size=ns.batch_size, output_root=output_root,
                        log_dir=output_root / f".aimed-sweep-{uuid.uuid4().hex[:8]}", cache_dir=cache_dir,
                        done=frozenset(known), threads=threads)
    print(f"sweep: {len(specs)} checkpoint(s) × {len(tasks)} task(s) on the {executor.describe()}", file=sys.stderr)
    outcome = run_sweep(specs, left_out, executor, db_path, known, progress=not ns.quiet)
    print(table(outcome.rows))
    print(verdict(outcome.rows, outcome.seconds))
    if outcome.recorded and db_path is not None:
        remember_index(db_path)  # leaderboard, report and dashboard find it without --db
        print(f"recorded in index: {where(db_path)}")
    line = failure_line(outcome.rows)
    if line:
        raise UserError(line)
    return 0
