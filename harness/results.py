"""A run folder: ``results.json`` in lm-evaluation-harness's layout plus our ``aimed`` key,
and one ``samples_<task>.jsonl`` a task. Written to a temporary sibling folder and
renamed into place at the end, so a failed run leaves no half-written folder.

A predict_only task (taskspec.py) has an alias-only results block (no metric, never a
made-up 0), ``aimed.predict_only`` says so with its item count and submission file
(``submission_<task>.json``, in the publisher's format), and a group that holds it
averages its other members only.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from .errors import UserError, read_json
from .owned import check_target, replace_folder, write_marker
from .scoring.metrics import METRICS
from .taskspec import Mode

FILTER = "none"  # lm-eval's filter name for unfiltered metrics: keys look like "acc,none"


def _num(x: float) -> Any:
    return None if isinstance(x, float) and math.isnan(x) else x


def task_block(outcome) -> dict:
    block: dict[str, Any] = {"alias": outcome.task.name}
    for name, (value, se, n) in outcome.metrics.items():
        block[f"{name},{FILTER}"] = _num(value)
        block[f"{name}_stderr,{FILTER}"] = _num(se) if n > 1 else "N/A"
    return block


def group_block(name: str, members: list[str], blocks: dict[str, dict], sizes: dict[str, int],
                primary: dict[str, str]) -> dict:
    """A group's metrics: size-weighted means of the metrics all members share (with pooled
    standard errors), and ``score``: the unweighted mean of each member's primary metric."""
    block: dict[str, Any] = {"alias": name}
    shared = None
    for m in members:
        names = {k.split(",")[0] for k in blocks[m] if "," in k and "_stderr" not in k}
        shared = names if shared is None else shared & names
    for metric in sorted(shared or ()):
        vals = [(blocks[m][f"{metric},{FILTER}"], blocks[m].get(f"{metric}_stderr,{FILTER}"), sizes[m])
                for m in members]
        if any(v is None for v, _, _ in vals):
            continue
        total = sum(n for _, _, n in vals)
        block[f"{metric},{FILTER}"] = sum(v * n for v, _, n in vals) / total
        ses = [se for _, se, _ in vals]
        if all(isinstance(se, (int, float)) for se in ses):
            block[f"{metric}_stderr,{FILTER}"] = math.sqrt(sum((se * n) ** 2 for (_, se, n) in vals)) / total
    mains = [blocks[m].get(f"{primary[m]},{FILTER}") for m in members]
    if all(isinstance(v, (int, float)) for v in mains):
        block[f"score,{FILTER}"] = sum(mains) / len(mains)
        ses = [blocks[m].get(f"{primary[m]}_stderr,{FILTER}") for m in members]
        if all(isinstance(se, (int, float)) for se in ses):
            block[f"score_stderr,{FILTER}"] = math.sqrt(sum(se ** 2 for se in ses)) / len(ses)
    return block


def group_blocks_for(groups: dict[str, list[str]], blocks: dict[str, dict], sizes: dict[str, int],
                     primary: dict[str, Optional[str]]) -> dict[str, dict]:
    """Every group's block; ``groups`` lists members before the groups that hold them.
    A member without a primary metric (a predict_only task, or a group of only such) is
    left out of the averages: it has no score to weigh."""
    blocks, sizes, primary = dict(blocks), dict(sizes), dict(primary)
    out: dict[str, dict] = {}
    for gname, members in groups.items():
        scored = [m for m in members if primary.get(m)]
        out[gname] = blocks[gname] = group_block(gname, scored, blocks, sizes, primary) if scored \
            else {"alias": gname}
        sizes[gname] = sum(sizes[m] for m in scored)
        primary[gname] = "score" if scored else None
    return out


def regroup(results: dict) -> None:
    """Recompute the group blocks of a results dict from its task blocks (after re-scoring)."""
    groups = {g: m for g, m in results.get("group_subtasks", {}).items() if m}
    tasks = {t: results["results"][t] for t in results["configs"]}
    sizes = {t: results["n-samples"][t]["effective"] for t in tasks}
    primary = {t: None if c.get("predict_only") else c.get("primary_metric") or c["metrics"][0]
               for t, c in results["configs"].items()}
    blocks = group_blocks_for(groups, tasks, sizes, primary)
    results["groups"] = blocks
    results["results"] = {**blocks, **tasks}


def build_results(outcomes: list, groups: dict[str, list[str]], config: dict, aimed: dict,
                  started: float) -> dict:
    blocks = {o.task.name: task_block(o) for o in outcomes}
    sizes = {o.task.name: len(o.records) for o in outcomes}
    primary = {o.task.name: o.task.spec.main_metric for o in outcomes}
    group_blocks = group_blocks_for(groups, blocks, sizes, primary)
    # every reported metric (no_answer, a protocol's) is a registered Metric: its direction is known
    hib = {o.task.name: {n: METRICS.get(n).higher_is_better for n in o.metrics if n in METRICS} for o in outcomes}
    for key in ("skipped_rows", "reasoning_traces"):  # what runner.run_task noted about a task's data and outputs
        noted = {o.task.name: o.extras[key] for o in outcomes if key in getattr(o, "extras", {})}
        if noted:
            aimed = {**aimed, key: noted}
    predicted = {o.task.name: {"items": len(o.records),
                               "submission": submission_file(o.task.name) if o.task.spec.submission else None,
                               "format": o.task.spec.submission}
                 for o in outcomes if o.task.spec.predict_only}
    if predicted:  # tasks whose answers their publisher keeps: predicted, not scored
        aimed = {**aimed, "predict_only": predicted}
    for g in groups:  # a group's shared metric keeps its direction (order_sensitivity: lower is better)
        names = [k.split(",")[0] for k in group_blocks[g] if "," in k and "_stderr" not in k]
        hib[g] = {n: METRICS.get(n).higher_is_better if n in METRICS else True for n in names}
    return {
        "results": {**group_blocks, **blocks},
        "groups": group_blocks,
        "group_subtasks": {**{g: list(m) for g, m in groups.items()},
                           **{o.task.name: [] for o in outcomes}},
        "configs": {o.task.name: task_config(o) for o in outcomes},
        "versions": {**{o.task.name: o.task.spec.version for o in outcomes}, **{g: 1 for g in groups}},
        "n-shot": {o.task.name: o.num_fewshot for o in outcomes},
        "higher_is_better": hib,
        "n-samples": {o.task.name: {"original": o.n_original, "effective": len(o.records)} for o in outcomes},
        "config": config,
        "git_hash": git_revision(),
        "date": started,
        "total_evaluation_time_seconds": str(time.time() - started),
        "aimed": aimed,
    }


def submission_file(task: str) -> str:
    """The name, in the run folder, of a predict_only task's submission file."""
    return f"submission_{task}.json"


def task_config(outcome) -> dict:
    spec = outcome.task.spec
    cfg = spec.model_dump(mode="json", exclude_none=True)
    cfg.update({"output_type": "generate_until" if outcome.mode == Mode.GENERATE else "multiple_choice",
                "aimed_mode": outcome.mode, "num_fewshot": outcome.num_fewshot,
                "metric_list": [{"metric": m, "higher_is_better": METRICS.get(m).higher_is_better}
                                for m in spec.metrics]})
    return cfg


def git_revision(cwd: Optional[Path] = None) -> Optional[str]:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Check ``--output_dir`` before any work: new, empty, or a run folder of ours to replace."""
    check_target(path, what="--output_dir", kind="run", overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--output_dir {path}: cannot create {path.parent} ({exc.strerror}); "
                        "choose a folder you can write to") from None


def write_run(path: Path, results: dict, samples: dict[str, list[dict]], cached: Optional[Path] = None,
              extra_files: Optional[dict[str, str]] = None) -> Path:
    """Write the run folder atomically: a temporary sibling, swapped into place. A disk that
    is full or read-only leaves nothing behind, and the message says where the answers are
    kept (``cached``: the response cache), so the rerun computes nothing again.
    ``extra_files``: file name -> text, written beside them (predict_only submissions)."""
    tmp = path.parent / f".{path.name}.partial-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        write_marker(tmp, "run")
        for task, records in samples.items():
            with (tmp / f"samples_{task}.jsonl").open("w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        (tmp / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2, default=str),
                                          encoding="utf-8")
        replace_folder(tmp, path)
    except OSError as exc:
        kept = (f"the answers are kept in the response cache {cached}: rerun the same command once "
                "there is room and nothing is computed again") if cached else \
            "the answers were not cached (--no_cache): the run must be scored again"
        raise UserError(f"--output_dir {path}: cannot write the run folder ({exc.strerror or exc}); "
                        f"{kept}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def atomic_write_text(path: Path, text: str, what: Optional[str] = None) -> None:
    """Write ``text`` to ``path`` through a temporary sibling: a full or read-only disk leaves
    the old file as it was and no temporary behind (a UserError naming ``what`` or the path)."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if path.is_dir():
        raise UserError(f"{label}: is a folder; give a file's path")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{label}: cannot write it ({exc.strerror or exc}); free some space or "
                        "choose a folder you can write to") from None


def atomic_write_many(files: dict[Path, str], what: str) -> None:
    """Write several files so that a full disk changes none of them: every temporary is
    written first, and only then are they renamed into place."""
    tmps: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            tmps.append((tmp, path))
            tmp.write_text(text, encoding="utf-8")
        for tmp, path in tmps:
            os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"{what}: cannot write it ({exc.strerror or exc}); nothing was changed, free some "
                        "space or fix the folder's permissions") from None
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)


def read_results(run_dir: Path) -> dict:
    """A run folder's results.json, checked to have the blocks re-scoring reads."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise UserError(f"{run_dir}: is a file; give the run folder that holds results.json")
    f = run_dir / "results.json"
    if not f.exists():
        raise UserError(f"{run_dir}: no results.json; give a folder that `aimed-eval run` wrote")
    results = read_json(f, "the run folder is damaged")
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict) \
            or not isinstance(results.get("configs"), dict) or not results["configs"]:
        raise UserError(f"{f}: not the results.json of an aimed-eval run (no 'results' and 'configs' "
                        "blocks); give a run folder that `aimed-eval run` wrote")
    return results
