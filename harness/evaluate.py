"""One evaluation run end to end: load the model, score the tasks, write the run folder."""

from __future__ import annotations

import platform
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from .cache import NoCache, ResponseCache
from .distributed import current
from .manifest import package_versions, read_manifest
from .models.args import ModelArgs
from .models.backend import DEFAULT_BACKEND, Backend, BackendOptions, HashFolder, build_backend
from .models.fingerprint import folder_fingerprint
from .owned import folder_lock
from .results import build_results, prepare_output_dir, submission_file, write_run
from .runner import RunOptions, TaskOutcome, check_options_apply, is_circular, run_task
from .taskregistry import SUBMISSIONS, group_tree, resolve_tasks
from .templates import RAW_TEMPLATE
from .training_overlap import check_training_data

@dataclass
class RunResult:
    run_dir: Path
    results: dict
    outcomes: list[TaskOutcome]


# (path, size, mtime_ns) -> sha256 of files hashed in this process: the runs of several
# adapters hash their base once, with or without the response cache.
_HASHES: dict[tuple, str] = {}


def folder_hasher(cache) -> HashFolder:
    """Hashes a folder's files, remembering each file's hash in this process and in the
    response cache, so a large checkpoint is read once."""
    def known(*key):
        return _HASHES.get(key) or cache.known_hash(*key)

    def remember(path: str, size: int, mtime_ns: int, sha: str) -> None:
        _HASHES[(path, size, mtime_ns)] = sha
        cache.remember_hash(path, size, mtime_ns, sha)

    return lambda folder: folder_fingerprint(folder, (known, remember))


def model_fingerprint(backend: Backend, args: ModelArgs, cache) -> str:
    return backend.fingerprint(args, folder_hasher(cache))


def default_output_dir(model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("aimed_runs") / f"{Path(model.rstrip('/')).name}-{stamp}"


def evaluate(args: ModelArgs, task_names: list[str], opts: RunOptions, *, output_dir: Optional[Path] = None,
             cache_dir: Optional[Path] = None, use_cache: bool = True, batch_size: str = "auto",
             overwrite: bool = False, backend: Union[str, Backend] = DEFAULT_BACKEND,
             meta: Optional[dict] = None) -> RunResult:
    """Score ``task_names`` with the model ``args`` names and write the run folder.

    ``backend``: a backend's name (built by the registry, ``models/backend.py``) or a built
    :class:`Backend`. ``meta`` (``--meta stage=sft,base_model=qwen2-7b,step=200``) labels a
    checkpoint that has no ``aimed_checkpoint.json``; the manifest wins where both say
    something."""
    output_dir = Path(output_dir) if output_dir else default_output_dir(args.model)
    return list(iter_runs([args], task_names, opts, [output_dir], cache_dir=cache_dir, use_cache=use_cache,
                          overwrite=overwrite, backend=backend, backend_options=BackendOptions(batch_size=batch_size),
                          meta=meta))[0]


def iter_runs(runs: list[ModelArgs], task_names: list[str], opts: RunOptions, output_dirs: list[Path], *,
              cache_dir: Optional[Path] = None, use_cache: bool = True, overwrite: bool = False,
              backend: Union[str, Backend] = DEFAULT_BACKEND, backend_options: BackendOptions = BackendOptions(),
              meta: Optional[dict] = None) -> Iterator[RunResult]:
    """Score each of ``runs`` (one base, one adapter each; see ``models/adapters.py``) into its
    own run folder, yielding each result as it is written. A backend named by ``backend`` is
    built once, after the tasks and folders are checked, and the adapters are swapped in
    turn. Under a data-parallel launch every process scores a shard and only rank 0 writes
    the folders."""
    tasks = resolve_tasks(task_names)
    check_options_apply(tasks, opts)
    output_dirs = [Path(d) for d in output_dirs]
    locks = ExitStack()
    for d in output_dirs:  # every folder checked (and claimed) before any model work
        prepare_output_dir(d, overwrite)
        if current().is_main:
            locks.enter_context(folder_lock(d, "--output_dir"))
    for task in tasks:  # fail on bad data before the (slow) model load
        task.samples()
        if task.fewshot_path and (opts.num_fewshot or task.spec.num_fewshot):
            task.fewshot_pool()
    try:  # the training data is read before the model loads, so a bad file fails first
        data_check = check_training_data(tasks, opts.contamination_data, opts.contamination_ngram,
                                         opts.contamination_threshold, opts.progress and current().is_main)
        cache = ResponseCache(cache_dir) if use_cache and cache_dir else NoCache()
    except BaseException:
        locks.close()
        raise
    try:  # a misnamed rubric or a judge that cannot be reached fails now, before the (slow) model load
        judge = _build_judge(opts, cache, tasks) if current().is_main else None
    except BaseException:
        cache.close()
        locks.close()
        raise
    try:
        built: Optional[Backend] = None if isinstance(backend, str) else backend
        for i, (args, output_dir) in enumerate(zip(runs, output_dirs)):
            started = time.time()
            load_started = time.perf_counter()
            if built is None:
                built = build_backend(str(backend), backend_options, runs)
            elif i:
                built.use_adapter(args.lora_model[0])
            load_seconds = time.perf_counter() - load_started
            yield _score_and_write(args, built, tasks, task_names, opts, cache, output_dir,
                                   backend_options.batch_size, meta, started, load_seconds, data_check, judge)
    finally:
        cache.close()
        locks.close()


def _score_and_write(args: ModelArgs, backend: Backend, tasks: list, task_names: list[str], opts: RunOptions,
                     cache, output_dir: Path, batch_size: str, meta: Optional[dict], started: float,
                     load_seconds: float, data_check: tuple, judge=None) -> RunResult:
    fingerprint = model_fingerprint(backend, args, cache)
    overlaps, data_summary = data_check
    outcomes = [run_task(t, backend, cache, fingerprint, opts, args.template_name,
                         overlaps.get(t.name) if overlaps is not None else None, judge) for t in tasks]
    info = backend.info
    model_folder = Path(info.model_folder) if info.model_folder else None
    adapters = [Path(a) for a in info.adapter_folders]
    checkpoint = adapters[0] if adapters else model_folder
    manifest = read_manifest(checkpoint) if checkpoint else None
    config = {
        "model": backend.name, "model_args": _model_args_string(args), "batch_size": batch_size,
        "device": info.device, "limit": opts.limit, "random_seed": opts.seed,
        "fewshot_seed": opts.seed, "apply_chat_template": args.template_name != RAW_TEMPLATE,
    }
    aimed = {
        "run_id": uuid.uuid4().hex,
        "meta": meta or {},
        "model": {"args": args.to_dict(), "fingerprint": fingerprint,
                  "folder": str(model_folder) if model_folder else info.device,
                  "adapters": [str(a) for a in adapters], "dtype": info.dtype,
                  "manifest": manifest},
        "tasks": {o.task.name: {"mode": o.mode, "version": o.task.spec.version, "spec_hash": o.task.spec_hash,
                                "data_hash": o.task.data_hash, "data_path": str(o.task.data_path),
                                "spec_path": str(o.task.spec_path), "main_metric": o.task.spec.main_metric}
                  for o in outcomes},
        "categories": {o.task.name: o.categories for o in outcomes if o.categories},
        # items each metric applied to (set_f1: the multi-answer items only)
        "scored": {o.task.name: {m: v[2] for m, v in o.metrics.items()} for o in outcomes},
        "options": {"mode": opts.mode, "num_fewshot": opts.num_fewshot, "cloze_norm": opts.cloze_norm or "char",
                    "template_name": args.template_name,
                    "circular": [o.task.name for o in outcomes if is_circular(o.task, opts)]},
        **({"contamination": data_summary} if data_summary else {}),
        **({"judge": judge_summary(judge, outcomes)} if judge is not None else {}),
        "versions": package_versions(), "python": platform.python_version(),
        "timings": {"load_seconds": round(load_seconds, 3), "processes": current().size,
                    **{o.task.name: {"seconds": round(o.seconds, 3), "computed": o.computed,
                                     "cached": o.cached,
                                     **{k: v for k, v in o.extras.items() if k == "computed_by_process"}}
                       for o in outcomes}},
    }
    results = build_results(outcomes, group_tree(task_names), config, aimed, started)
    if current().is_main:  # the other processes of a data-parallel run only scored their shards
        # a predict_only task's predictions, also in the file its publisher's leaderboard takes
        submissions = {submission_file(o.task.name): SUBMISSIONS.get(o.task.spec.submission)(o.records)
                       for o in outcomes if o.task.spec.submission}
        write_run(output_dir, results, {o.task.name: o.records for o in outcomes}, cached=cache.path,
                  extra_files=submissions)
    return RunResult(output_dir, results, outcomes)


def _build_judge(opts: RunOptions, cache, tasks: list):
    if opts.judge is None:
        return None
    from .judge.client import build_judge
    from .judge.session import Judge, task_rubric

    for task in tasks:
        task_rubric(opts.judge, task.spec, task.spec_path.parent)

    return Judge(opts.judge, build_judge(opts.judge, folder_hasher(cache)), cache, opts.progress)


def judge_summary(judge, outcomes: list[TaskOutcome]) -> dict:
    """results.json's ``aimed.judge``: the judge (no key: keys live in the environment) and,
    a task, its rubric and what judging cost (asked, cached, invalid, tokens, latency)."""
    return {"judge": judge.describe(),
            "tasks": {o.task.name: o.extras["judge"] for o in outcomes if "judge" in o.extras}}


def _model_args_string(args: ModelArgs) -> str:
    parts = [f"pretrained={args.model}"]
    if args.lora_model:
        parts.append(f"peft={args.lora_model[0]}")
    if args.tokenizer_path:
        parts.append(f"tokenizer={args.tokenizer_path}")
    parts.append(f"dtype={args.dtype}")
    return ",".join(parts)
