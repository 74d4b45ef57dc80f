"""One evaluation run end to end: load the model, score the tasks, write the run folder."""

from __future__ import annotations

import json
import platform
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .cache import NoCache, ResponseCache
from .distributed import current
from .errors import UserError
from .models.args import ModelArgs
from .models.fingerprint import combine, folder_fingerprint
from .owned import folder_lock
from .results import build_results, prepare_output_dir, write_run
from .runner import RunOptions, TaskOutcome, run_task, task_mode
from .taskregistry import group_tree, resolve_tasks

MANIFEST = "aimed_checkpoint.json"
VERSIONED = ("aimed-eval", "torch", "transformers", "peft", "tokenizers", "safetensors", "rouge-chinese", "jieba")


@dataclass
class RunResult:
    run_dir: Path
    results: dict
    outcomes: list[TaskOutcome]


def package_versions() -> dict[str, Optional[str]]:
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# (path, size, mtime_ns) -> sha256 of files hashed in this process: the runs of several
# adapters hash their base once, with or without the response cache.
_HASHES: dict[tuple, str] = {}


def model_fingerprint(backend, args: ModelArgs, cache) -> str:
    if hasattr(backend, "fingerprint"):  # a remote model: the backend knows what identifies it
        return backend.fingerprint()
    def known(*key):
        return _HASHES.get(key) or cache.known_hash(*key)

    def remember(path: str, size: int, mtime_ns: int, sha: str) -> None:
        _HASHES[(path, size, mtime_ns)] = sha
        cache.remember_hash(path, size, mtime_ns, sha)

    memo = (known, remember)
    info = backend.info
    parts = [folder_fingerprint(Path(info["model_folder"]), memo)]
    parts += [folder_fingerprint(Path(a), memo) for a in info["adapter_folders"]]
    if args.tokenizer_path:
        parts.append(folder_fingerprint(Path(args.tokenizer_path), memo))
    parts += [f"template={args.template_name}", f"dtype={info['dtype']}", f"resize={args.resize_emb}"]
    if getattr(backend, "name", "hf") != "hf":  # another engine's numbers (e.g. vLLM's kernels) are not the hf backend's
        parts.append(f"backend={backend.name}")
    return combine(*parts)


def read_manifest(folder: Path) -> Optional[dict]:
    f = folder / MANIFEST
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{f}: not valid JSON ({exc}); fix or remove the manifest") from None


def default_output_dir(model: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("aimed_runs") / f"{Path(model.rstrip('/')).name}-{stamp}"


def evaluate(args: ModelArgs, task_names: list[str], opts: RunOptions, *, output_dir: Optional[Path] = None,
             cache_dir: Optional[Path] = None, use_cache: bool = True, batch_size: str = "auto",
             overwrite: bool = False, backend=None, meta: Optional[dict] = None) -> RunResult:
    """Score ``task_names`` with the model ``args`` names and write the run folder.

    ``meta`` (``--meta stage=sft,base_model=qwen2-7b,step=200``) labels a checkpoint that
    has no ``aimed_checkpoint.json``; the manifest wins where both say something."""
    output_dir = Path(output_dir) if output_dir else default_output_dir(args.model)
    return list(iter_runs([args], task_names, opts, [output_dir], cache_dir=cache_dir, use_cache=use_cache,
                          batch_size=batch_size, overwrite=overwrite, backend=backend, meta=meta))[0]


def iter_runs(runs: list[ModelArgs], task_names: list[str], opts: RunOptions, output_dirs: list[Path], *,
              cache_dir: Optional[Path] = None, use_cache: bool = True, batch_size: str = "auto",
              overwrite: bool = False, backend=None, meta: Optional[dict] = None,
              backend_factory: Optional[Callable[[], Any]] = None) -> Iterator[RunResult]:
    """Score each of ``runs`` (one base, one adapter each; see ``models/adapters.py``) into its
    own run folder, yielding each result as it is written. The model is loaded once (by
    ``backend_factory`` when given, after the tasks and folders are checked) and the
    adapters are swapped in turn. Under a data-parallel launch every process scores a
    shard and only rank 0 writes the folders."""
    tasks = resolve_tasks(task_names)
    if opts.mode and opts.mode != "generate" and not any(t.spec.kind == "multiple_choice" for t in tasks):
        raise UserError(f"--mode {opts.mode}: applies to multiple-choice tasks, and "
                        f"{', '.join(t.name for t in tasks)} only generate; drop --mode")
    if opts.cloze_norm and not any(task_mode(t, opts.mode) == "cloze" for t in tasks):
        raise UserError(f"--cloze_norm {opts.cloze_norm}: applies to cloze mode, and no task of this run "
                        "scores in it; pass --mode cloze or drop --cloze_norm")
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
    runs = [replace(a, template_name=opts.template_name) for a in runs]
    try:
        cache = ResponseCache(cache_dir) if use_cache and cache_dir else NoCache()
    except BaseException:
        locks.close()
        raise
    try:
        for i, (args, output_dir) in enumerate(zip(runs, output_dirs)):
            started = time.time()
            load_started = time.perf_counter()
            if backend is None and backend_factory is not None:
                backend = backend_factory()
            if backend is None:
                from .models.hf import HFBackend

                backend = HFBackend(args, batch_size=batch_size)
            elif i:
                backend.use_adapter(args.lora_model[0])
            load_seconds = time.perf_counter() - load_started
            yield _score_and_write(args, backend, tasks, task_names, opts, cache, output_dir, batch_size, meta,
                                   started, load_seconds)
    finally:
        cache.close()
        locks.close()


def _score_and_write(args: ModelArgs, backend, tasks: list, task_names: list[str], opts: RunOptions, cache,
                     output_dir: Path, batch_size: str, meta: Optional[dict], started: float,
                     load_seconds: float) -> RunResult:
    fingerprint = model_fingerprint(backend, args, cache)
    outcomes = [run_task(t, backend, cache, fingerprint, opts) for t in tasks]
    model_folder = Path(backend.info["model_folder"]) if backend.info["model_folder"] else None
    adapters = [Path(a) for a in backend.info["adapter_folders"]]
    checkpoint = adapters[0] if adapters else model_folder
    manifest = read_manifest(checkpoint) if checkpoint else None
    config = {
        "model": backend.name, "model_args": _model_args_string(args), "batch_size": batch_size,
        "device": backend.info["device"], "limit": opts.limit, "random_seed": opts.seed,
        "fewshot_seed": opts.seed, "apply_chat_template": args.template_name != "raw",
    }
    aimed = {
        "run_id": uuid.uuid4().hex,
        "meta": meta or {},
        "model": {"args": args.to_dict(), "fingerprint": fingerprint,
                  "folder": str(model_folder) if model_folder else backend.info["device"],
                  "adapters": [str(a) for a in adapters], "dtype": backend.info["dtype"],
                  "manifest": manifest},
        "tasks": {o.task.name: {"mode": o.mode, "version": o.task.spec.version, "spec_hash": o.task.spec_hash,
                                "data_hash": o.task.data_hash, "data_path": str(o.task.data_path),
                                "spec_path": str(o.task.spec_path), "main_metric": o.task.spec.main_metric}
                  for o in outcomes},
        "categories": {o.task.name: o.categories for o in outcomes if o.categories},
        # items each metric applied to (set_f1: the multi-answer items only)
        "scored": {o.task.name: {m: v[2] for m, v in o.metrics.items()} for o in outcomes},
        "options": {"mode": opts.mode, "num_fewshot": opts.num_fewshot, "cloze_norm": opts.cloze_norm or "char",
                    "template_name": opts.template_name},
        "versions": package_versions(), "python": platform.python_version(),
        "timings": {"load_seconds": round(load_seconds, 3), "processes": current().size,
                    **{o.task.name: {"seconds": round(o.seconds, 3), "computed": o.computed,
                                     "cached": o.cached,
                                     **{k: v for k, v in o.extras.items() if k == "computed_by_process"}}
                       for o in outcomes}},
    }
    results = build_results(outcomes, group_tree(task_names), config, aimed, started)
    if current().is_main:  # the other processes of a data-parallel run only scored their shards
        write_run(output_dir, results, {o.task.name: o.records for o in outcomes}, cached=cache.path)
    return RunResult(output_dir, results, outcomes)


def _model_args_string(args: ModelArgs) -> str:
    parts = [f"pretrained={args.model}"]
    if args.lora_model:
        parts.append(f"peft={args.lora_model[0]}")
    if args.tokenizer_path:
        parts.append(f"tokenizer={args.tokenizer_path}")
    parts.append(f"dtype={args.dtype}")
    return ",".join(parts)
