"""A synthetic but realistic results index, for benchmarks, tests and a demo dashboard.

Four base models, each trained base -> pt -> sft -> ppo -> dpo with checkpoints every few
hundred steps, a few checkpoints scored twice (the leaderboard shows the latest run), on
the suite's shape: cmexam, medterm, abstractqa and CMMLU medical subjects, grouped as
``cmmlu_medical`` and ``medqa``. Every run is a real run folder (``results.json`` in the
layout ``aimed-eval run`` writes, and one ``samples_<task>.jsonl`` a task) recorded with
the same ``record_run`` a real run goes through, so compare, drill-down and the sample
browser work on it.

Scores are consistent all the way down: an item's score depends on the checkpoint's
skill and the item's fixed difficulty, a task's metric is the mean of its items' scores,
a category's metric the mean over its items, a group's ``score`` the mean of its
members' main metrics. Skill grows with training step within a stage (with diminishing
returns) and jumps between stages, differently for each base model. Deterministic for a
given ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from pathlib import Path
from typing import Optional

from aimed.harness.index import connect, record_run
from aimed.harness.index_pg import is_pg_url
from aimed.harness.results import group_blocks_for

BASE_MODELS = {"llama2-zh-7b": 0.34, "baichuan2-7b": 0.40, "qwen2-7b": 0.50, "chatglm3-6b": 0.42}
# stage -> (share of a base model's checkpoints, step interval, skill gained over the stage)
STAGES = {"pt": (0.30, 500, 0.04), "sft": (0.35, 100, 0.12), "ppo": (0.17, 50, 0.015), "dpo": (0.18, 50, 0.03)}
CMMLU = ("anatomy", "clinical_knowledge", "college_medical_statistics", "college_medicine", "genetics",
         "nutrition", "professional_medicine", "traditional_chinese_medicine", "virology")
CATEGORIES = {
    "cmexam": {"Clinical Department": ["内科", "外科", "儿科", "妇产科", "中医科", "不符合"],
               "Area of Competency": ["医学基础知识", "疾病诊断和鉴别诊断", "疾病治疗", "公卫法律伦理"],
               "Difficulty level": ["1", "2", "3", "4", "5"]},
    "abstractqa": {"discipline": ["临床医学", "基础医学", "公共卫生", "中医学"]},
    "medterm": {"department": ["内科", "外科", "药学"]},
}
ORGANS = ("心", "肝", "脾", "肺", "肾", "胃", "脑", "骨", "皮肤", "血液")
RERUN_EVERY = 25  # one checkpoint in this many is scored twice


def task_list(n_tasks: int) -> list[tuple[str, str, list[str]]]:
    """(name, kind, metrics) of the leaf tasks: the suite's shape, then extra MCQ sets."""
    names = ["cmexam", "medterm", "abstractqa"] + [f"cmmlu_{s}" for s in CMMLU]
    names += [f"medmcq_{k}" for k in range(max(0, n_tasks - len(names)))]
    out = []
    for name in names[:n_tasks]:
        generation = name in ("medterm", "abstractqa")
        out.append((name, "generation" if generation else "multiple_choice",
                    ["rougeL", "rouge1", "char_f1"] if generation else ["acc"]))
    return out


def group_tree(leaves: list[str]) -> dict[str, list[str]]:
    """Members before the groups that hold them, as ``aimed-eval run`` lists them."""
    cmmlu = [t for t in leaves if t.startswith("cmmlu_")]
    groups = {"cmmlu_medical": cmmlu} if cmmlu else {}
    top = [t for t in leaves if not t.startswith("cmmlu_")] + (["cmmlu_medical"] if cmmlu else [])
    groups["medqa"] = top
    return groups


def checkpoint_plan(n_runs: int) -> list[dict]:
    """The checkpoints of each base model along its training path, and which are re-run."""
    plan = []
    names = list(BASE_MODELS)
    for b, base in enumerate(names):
        budget = n_runs // len(names) + (1 if b < n_runs % len(names) else 0)
        reruns = budget // RERUN_EVERY
        n_ckpt = max(1, budget - reruns)
        ckpts = [{"base_model": base, "stage": "base", "step": None, "progress": 0.0, "stage_gain": 0.0}]
        left = n_ckpt - 1
        counts = {s: int(share * left) for s, (share, _, _) in STAGES.items()}
        counts["dpo"] += left - sum(counts.values())
        gained = 0.0
        for stage, (_, interval, gain) in STAGES.items():
            for i in range(counts[stage]):
                frac = (i + 1) / counts[stage]
                ckpts.append({"base_model": base, "stage": stage, "step": interval * (i + 1),
                              "progress": gained + gain * (1 - math.exp(-3 * frac)) / (1 - math.exp(-3))})
            gained += gain if counts[stage] else 0.0
        for i, c in enumerate(ckpts):
            c["parent"] = _model_path(ckpts[i - 1]) if i else None
            c["order"] = i
            plan.append({**c, "rerun": 0})
        for k in range(reruns):  # spread the re-runs along the path
            plan.append({**ckpts[(k * 7 + 3) % len(ckpts)], "rerun": k + 1})
    return plan[:n_runs]


def _model_path(c: dict) -> str:
    if c["stage"] == "base":
        return f"/models/{c['base_model']}"
    return f"/checkpoints/{c['base_model']}/{c['stage']}/checkpoint-{c['step']}"


def _hex(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]


def _items(task: str, kind: str, n_items: int, rng: random.Random) -> list[dict]:
    """Fixed items of a task (the same in every run): text, answer, categories, difficulty."""
    items = []
    for i in range(n_items):
        organ = ORGANS[i % len(ORGANS)]
        cats = {col: rng.choice(vals) for col, vals in CATEGORIES.get(task, {}).items()}
        if kind == "multiple_choice":
            doc = {"id": f"{task}-{i}", "question": f"关于{organ}的疾病，下列说法正确的是（{task} 第{i + 1}题）",
                   "options": {k: f"{organ}选项{k}{i}" for k in "ABCD"}, "answer": [rng.choice("ABCD")],
                   "target": "", "categories": cats}
        else:
            doc = {"id": f"{task}-{i}", "question": f"请解释医学名词：{organ}功能不全（{task} 第{i + 1}题）",
                   "options": {}, "answer": [], "target": f"{organ}功能不全是指{organ}的生理功能减退的状态。",
                   "categories": cats}
        items.append({"doc": doc, "difficulty": rng.random()})
    return items


def _item_score(skill: float, item: dict, kind: str, jitter: float) -> float:
    if kind == "multiple_choice":  # right when the checkpoint's skill clears the item's difficulty
        return 1.0 if skill + jitter > item["difficulty"] else 0.0
    return round(min(1.0, max(0.0, 0.6 * skill + 0.25 * (0.5 - item["difficulty"]) + jitter)), 4)


def _mean_se(values: list[float]) -> tuple[float, Optional[float]]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _sample_line(i: int, item: dict, kind: str, scores: dict[str, float]) -> dict:
    doc = item["doc"]
    if kind == "multiple_choice":
        right = scores["acc"] == 1.0
        picked = doc["answer"][0] if right else "ABCD"[("ABCD".index(doc["answer"][0]) + 1) % 4]
        return {"doc_id": i, "doc": doc, "target": doc["answer"][0], "mode": "loglikelihood",
                "arguments": {"context": doc["question"] + "\n答案：", "continuations": list("ABCD")},
                "resps": [[-1.0 if k == picked else -2.5, 1, False] for k in "ABCD"],
                "filtered_resps": [picked], **scores}
    text = doc["target"][: max(1, int(len(doc["target"]) * scores["rougeL"]))]
    return {"doc_id": i, "doc": doc, "target": doc["target"], "mode": "generate",
            "arguments": {"context": doc["question"] + "\n解释：", "max_new_tokens": 64},
            "resps": text, "filtered_resps": text, **scores}


def _results(c: dict, run_id: str, tasks, items, groups, skill: dict, rng, date: float, data_hash: dict):
    blocks, sizes, primary, samples, cats, scored = {}, {}, {}, {}, {}, {}
    for name, kind, metrics in tasks:
        lines, per_metric = [], {m: [] for m in metrics}
        for i, item in enumerate(items[name]):
            base = _item_score(skill[name], item, kind, rng.gauss(0, 0.03))
            scores = {m: base if m in ("acc", "rougeL") else round(min(1.0, base * (1.1 if m == "rouge1" else 1.2)), 4)
                      for m in metrics}
            lines.append(_sample_line(i, item, kind, scores))
            for m in metrics:
                per_metric[m].append(scores[m])
        block = {"alias": name}
        for m in metrics:
            mean, se = _mean_se(per_metric[m])
            block[f"{m},none"], block[f"{m}_stderr,none"] = mean, se if se is not None else "N/A"
        blocks[name], sizes[name], primary[name], samples[name] = block, len(lines), metrics[0], lines
        scored[name] = {m: len(lines) for m in metrics}
        cats[name] = _categories(lines, metrics)
    group_blocks = group_blocks_for(groups, blocks, sizes, primary)
    hib = {name: {m: True for m in metrics} for name, _, metrics in tasks}
    hib.update({g: {k.split(",")[0]: True for k in b if "," in k and "_stderr" not in k}
                for g, b in group_blocks.items()})
    model = _model_path(c)
    aimed = {
        "run_id": run_id, "meta": {},
        "model": {"args": {"model": model, "lora_model": [], "template_name": "raw", "dtype": "bfloat16"},
                  "fingerprint": _hex("fingerprint", c["base_model"], c["stage"], c["step"]), "folder": model,
                  "adapters": [], "dtype": "bfloat16",
                  "manifest": {"stage": c["stage"], "base_model": c["base_model"], "parent": c["parent"],
                               "step": c["step"], "adapter": False, "synthetic": True}},
        "tasks": {name: {"mode": "loglikelihood" if kind == "multiple_choice" else "generate", "version": 1,
                         "spec_hash": _hex("spec", name)[:16], "data_hash": data_hash[name],
                         "data_path": f"$AIMED_DATA/synthetic/{name}", "spec_path": f"synthetic/{name}.yaml",
                         "main_metric": metrics[0]} for name, kind, metrics in tasks},
        "categories": {t: v for t, v in cats.items() if v},
        "scored": scored, "options": {"mode": None, "num_fewshot": None, "template_name": "raw"},
        "versions": {"aimed-eval": "synthetic"}, "timings": {},
    }
    results = {
        "results": {**group_blocks, **blocks}, "groups": group_blocks,
        "group_subtasks": {**groups, **{name: [] for name, _, _ in tasks}},
        "configs": {name: {"task": name, "version": 1, "metrics": metrics, "primary_metric": metrics[0],
                           "output_type": "multiple_choice" if kind == "multiple_choice" else "generate_until",
                           "metric_list": [{"metric": m, "higher_is_better": True} for m in metrics]}
                    for name, kind, metrics in tasks},
        "versions": {**{name: 1 for name, _, _ in tasks}, **{g: 1 for g in groups}},
        "n-shot": {name: 0 for name, _, _ in tasks}, "higher_is_better": hib,
        "n-samples": {name: {"original": sizes[name], "effective": sizes[name]} for name, _, _ in tasks},
        "config": {"model": "hf", "model_args": f"pretrained={model},dtype=bfloat16", "batch_size": "auto",
                   "device": "cuda:0", "limit": None, "random_seed": 1234},
        "git_hash": None, "date": date, "total_evaluation_time_seconds": "0", "aimed": aimed,
    }
    return results, samples


def _categories(lines: list[dict], metrics: list[str]) -> dict:
    out: dict = {}
    for column in lines[0]["doc"]["categories"] if lines else ():
        cells: dict = {}
        for line in lines:
            cells.setdefault(line["doc"]["categories"][column], []).append(line)
        out[column] = {}
        for category, members in sorted(cells.items()):
            cell: dict = {"n": len(members)}
            for m in metrics:
                mean, se = _mean_se([x[m] for x in members])
                cell[m], cell[f"{m}_stderr"] = mean, se
            out[column][category] = cell
    return out


def build(db_path, out_root, n_runs: int = 500, n_tasks: int = 10, seed: int = 0, n_items: int = 20):
    """Write ``n_runs`` run folders under ``out_root`` and record them into a fresh index at
    ``db_path`` (an existing file there is replaced; a PostgreSQL URL is recorded into as it
    is: give a new database); returns ``db_path`` (a Path, or the URL)."""
    if not is_pg_url(db_path):
        db_path = Path(db_path)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tasks = task_list(n_tasks)
    groups = group_tree([t for t, _, _ in tasks])
    items = {name: _items(name, kind, n_items, rng) for name, kind, _ in tasks}
    data_hash = {name: _hex("data", name, n_items, seed)[:16] for name, _, _ in tasks}
    task_offset = {name: rng.uniform(-0.08, 0.08) for name, _, _ in tasks}
    stage_taste = {(b, s, t): rng.uniform(-0.03, 0.03) for b in BASE_MODELS for s in STAGES for t, _, _ in tasks}
    t0 = 1_735_689_600.0  # 2025-01-01
    db = connect(db_path)
    try:
        for k, c in enumerate(checkpoint_plan(n_runs)):
            skill = {t: BASE_MODELS[c["base_model"]] + c["progress"] + task_offset[t]
                     + (stage_taste.get((c["base_model"], c["stage"], t), 0.0) if c["stage"] != "base" else 0)
                     for t, _, _ in tasks}
            run_id = _hex("run", seed, c["base_model"], c["stage"], c["step"], c["rerun"])
            date = t0 + list(BASE_MODELS).index(c["base_model"]) * 86400 + c["order"] * 3600 + c["rerun"] * 30 * 86400
            results, samples = _results(c, run_id, tasks, items, groups, skill, random.Random(f"{seed}/{k}"),
                                        date, data_hash)
            run_dir = out_root / f"{c['base_model']}-{c['stage']}-{c['step'] or 0}-run{c['rerun']}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            for task, lines in samples.items():
                (run_dir / f"samples_{task}.jsonl").write_text(
                    "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
            (run_dir / "results.json").write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")
            record_run(db, run_dir, results)
    finally:
        db.close()
    return db_path
