"""Read lm-evaluation-harness result files into the results index.

lm-eval 0.4.x writes ``<output_path>/<model_name_sanitized>/results_<date>.json``:
``results`` (one block a task or group, keys ``"acc,none"`` / ``"acc_stderr,none"``),
``groups``, ``group_subtasks``, ``configs`` (leaf tasks only, each with ``metric_list``),
``versions``, ``n-samples``, ``higher_is_better``, ``config`` (``model_args``:
``pretrained=PATH,peft=PATH,...`` or a dict), ``model_name``, ``task_hashes``, ``date``.

A checkpoint scored by lm-eval carries no weight fingerprint, so its identity is its
model arguments (``lm-eval:`` + hash); its lineage comes from the ``aimed_checkpoint.json``
in the ``pretrained`` folder when that folder is here, else ``--meta``, else the folder
name and stage ``unknown``. The run id hashes the model arguments, the date and the tasks:
importing the same file twice replaces the first record.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Optional

from .errors import UserError
from .index import MANIFEST, checkpoint_label, record, score_rows

LM_EVAL_GLOB = "results_*.json"


def parse_model_args(raw) -> dict:
    """``pretrained=PATH,dtype=float32`` (or a dict) -> a dict of strings."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    out = {}
    for part in str(raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def is_lm_eval_results(data) -> bool:
    return isinstance(data, dict) and isinstance(data.get("results"), dict) and \
        isinstance(data.get("config", {}), dict) and "aimed" not in data and \
        ("configs" in data or "versions" in data)


def _main_metric(task: str, block: dict, config: dict) -> Optional[str]:
    """The first metric the task's config lists, with its filter when that is not ``none``."""
    keys = [k for k in block if "," in k and "_stderr" not in k]
    wanted = [m.get("metric") for m in config.get("metric_list") or [] if isinstance(m, dict)]
    for metric in wanted:
        if f"{metric},none" in block:
            return metric
        for key in keys:
            if key.startswith(f"{metric},"):
                return key
    if not keys:
        return None
    metric, filt = keys[0].split(",", 1)
    return metric if filt == "none" else keys[0]


def aimed_names(data: dict, leaves: list[str], groups: list[str]) -> dict[str, str]:
    """lm-eval task name -> the name to index it under. Tasks that ``aimed-eval
    export-lm-eval`` wrote carry their aimed-eval name in ``metadata.aimed_task``, and their
    groups their aimed-eval name as alias: indexed under those, they line up with aimed-eval
    runs of the same tasks in one leaderboard column."""
    configs = data.get("configs") or {}
    names = {t: str(((configs.get(t) or {}).get("metadata") or {}).get("aimed_task") or t) for t in leaves}
    renamed = {t for t in leaves if names[t] != t}
    subtasks = data.get("group_subtasks") or {}
    for g in groups:
        names[g] = g
    for _ in groups:  # inner groups first, whatever order lm-eval listed them in
        for g in groups:
            members = subtasks.get(g) or []
            alias = str((data["results"].get(g) or {}).get("alias") or "").strip()
            if g not in renamed and members and alias and all(m in renamed for m in members):
                names[g] = alias
                renamed.add(g)
    return names


def _manifest(pretrained: str) -> dict:
    f = Path(pretrained) / MANIFEST
    try:
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
    except (OSError, ValueError):
        return {}


def record_lm_eval(db: sqlite3.Connection, path: Path, data: dict, meta: Optional[dict] = None) -> str:
    """Record one lm-eval results file; returns its run id."""
    config = data.get("config") or {}
    margs = parse_model_args(config.get("model_args"))
    pretrained = margs.get("pretrained") or data.get("model_name") or config.get("model") or "?"
    adapter = margs.get("peft") or None
    configs = data.get("configs") or {}
    subtasks = data.get("group_subtasks") or {}
    groups = [g for g in data["results"] if g in (data.get("groups") or {}) or subtasks.get(g)]
    leaves = [t for t in data["results"] if t not in groups and (t in configs or not configs)]
    identity = json.dumps({k: v for k, v in sorted(margs.items())} or pretrained, sort_keys=True)
    run_id = "lmeval-" + hashlib.sha256(
        json.dumps([identity, data.get("date"), sorted(data["results"])]).encode()).hexdigest()[:24]
    hashes = data.get("task_hashes") or {}
    names = aimed_names(data, leaves, groups)
    metas = []
    for pos, task in enumerate([*leaves, *groups]):
        main = _main_metric(task, data["results"][task], configs.get(task) or {})
        if main is None:  # a group lm-eval did not aggregate: nothing to show
            continue
        is_group = int(task in groups)
        cmeta = (configs.get(task) or {}).get("metadata") or {}
        metas.append((run_id, names[task], _int((data.get("versions") or {}).get(task)),
                      cmeta.get("aimed_mode") or (None if is_group else (configs.get(task) or {}).get("output_type")),
                      cmeta.get("aimed_data_hash") or hashes.get(task), cmeta.get("aimed_spec_hash"),
                      main, is_group, pos))
    if not metas:
        raise UserError(f"{path}: no task metrics in 'results'; give a results file of a finished lm-eval run")
    scores = [(r[0], names.get(r[1], r[1]), *r[2:]) for r in score_rows(run_id, data)]
    manifest = _manifest(pretrained)
    meta = meta or {}
    pick = lambda key, default=None: manifest.get(key, meta.get(key, default))  # noqa: E731
    step = pick("step")
    run = {"run_id": run_id, "run_dir": str(path.resolve()), "date": float(data.get("date") or path.stat().st_mtime),
           "source": "lm-eval", "model": pretrained + (f"+{adapter}" if adapter else ""),
           "checkpoint": checkpoint_label(pretrained, adapter) + " [lm-eval]",
           "fingerprint": "lm-eval:" + hashlib.sha256(identity.encode()).hexdigest()[:24],
           "base_model": str(pick("base_model", Path(pretrained.rstrip("/")).name)),
           "stage": str(pick("stage", "unknown")),
           "parent": None if pick("parent") is None else str(pick("parent")),
           "step": _int(step), "adapter": adapter,
           "tasks": json.dumps([m[1] for m in metas]),
           "config": json.dumps(config, ensure_ascii=False, default=str)}
    return record(db, run, scores, metas, [])


def _int(x) -> Optional[int]:
    try:
        return int(x)
    except (TypeError, ValueError):
        return None
