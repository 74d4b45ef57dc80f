"""A run's items, read from its ``samples_<task>.jsonl`` files, and a text search over them.

No streamlit here: the sample browser caches what ``load_items`` returns and filters it
with ``search_items``; the tests call both directly too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

PREFIX, SUFFIX = "samples_", ".jsonl"
# Keys of a samples line that are not metrics (everything else numeric is an item's score).
NOT_METRICS = {"doc_id", "doc", "target", "mode", "arguments", "resps", "filtered_resps"}


def sample_tasks(run_dir: Path) -> list[str]:
    """The tasks a run folder holds item files for, sorted."""
    return sorted(p.name[len(PREFIX):-len(SUFFIX)] for p in Path(run_dir).glob(f"{PREFIX}*{SUFFIX}"))


def samples_file(run_dir: Path, task: str) -> Path:
    return Path(run_dir) / f"{PREFIX}{task}{SUFFIX}"


def output_text(line: dict) -> str:
    """What the model answered: the filtered response ("B" for multiple choice, the
    generated text for generation)."""
    out = line.get("filtered_resps", line.get("resps", ""))
    while isinstance(out, list) and len(out) == 1:
        out = out[0]
    if isinstance(out, list):
        return " | ".join(str(o) for o in out)
    return "" if out is None else str(out)


def item_scores(line: dict) -> dict[str, float]:
    """The item's per-metric scores, scalar ones only (BLEU keeps corpus statistics per
    item, a list, which is not a score of the item)."""
    return {k: float(v) for k, v in line.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def load_items(path: Path, metric: Optional[str] = None) -> list[dict]:
    """One flat dict an item: doc_id, id, question (with its options), target, output,
    score (of ``metric``, else of the first scalar metric; None where it does not apply),
    metric, categories."""
    items = []
    with Path(path).open(encoding="utf-8") as f:
        for raw in f:
            if not raw.strip():
                continue
            line = json.loads(raw)
            doc = line.get("doc") or {}
            scores = item_scores(line)
            name = metric if metric in line else next(iter(scores), None)
            value = line.get(name) if name else None
            options = doc.get("options") or {}
            question = str(doc.get("question", ""))
            if options:
                question += "\n" + "\n".join(f"{k}. {v}" for k, v in options.items())
            items.append({
                "doc_id": line.get("doc_id"),
                "id": str(doc.get("id", line.get("doc_id", ""))),
                "question": question,
                "target": str(line.get("target", doc.get("target", ""))),
                "output": output_text(line),
                "score": float(value) if isinstance(value, (int, float)) else None,
                "metric": name,
                "categories": doc.get("categories") or {},
            })
    return items


def search_items(items: list[dict], query: str = "", scored: str = "all") -> list[dict]:
    """Items whose id, question, target or output contain every word of ``query``
    (case-insensitive); ``scored`` = "all", "right" (score 1) or "wrong" (score < 1)."""
    words = query.lower().split()
    hits = []
    for item in items:
        if scored == "right" and item["score"] != 1.0:
            continue
        if scored == "wrong" and (item["score"] is None or item["score"] >= 1.0):
            continue
        if words:
            text = "\n".join((item["id"], item["question"], item["target"], item["output"])).lower()
            if not all(w in text for w in words):
                continue
        hits.append(item)
    return hits
