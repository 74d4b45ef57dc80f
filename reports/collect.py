"""What a report shows, gathered from the results index (and two run folders for the
comparison) into one plain object that the HTML and Markdown renderers both read.

Reading only: the index through ``aimed.leaderboards.query`` and, for the comparison,
``aimed.harness.compare``; nothing here imports torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from aimed.harness.errors import UserError
from aimed.harness.index import where
from aimed.harness.index_pg import is_pg_url
from aimed.leaderboards import query
from aimed.leaderboards.robustness import robustness

# Bars and heatmaps show every checkpoint when there are this few; otherwise the best
# checkpoint of each stage, at most MAX_SHOWN of them (by the headline number, Row.average).
ALL_IF_AT_MOST = 12
MAX_SHOWN = 24


@dataclass
class Filters:
    base_models: Optional[list[str]] = None
    stages: Optional[list[str]] = None
    tasks: Optional[list[str]] = None

    def describe(self) -> str:
        parts = [f"{name}: {', '.join(values)}" for name, values in
                 (("base model", self.base_models), ("stage", self.stages), ("tasks", self.tasks)) if values]
        return "; ".join(parts) or "none (every run in the index)"


@dataclass
class ReportContent:
    db_path: Union[Path, str]  # a file, or a PostgreSQL URL without its password
    filters: Filters
    generated: str
    board: Any                              # query.Leaderboard
    shown: list                             # the Rows drawn in bars and heatmaps
    shown_note: str                         # which rows those are, and why
    progression: list[dict]                 # query.progression rows
    categories: dict[str, list[dict]]       # run_id -> query.category_scores rows
    main_metric: dict[str, str]             # task -> the metric its leaderboard column shows
    comparison: Optional[dict] = None       # Comparison.to_dict()
    comparison_note: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # run_id -> short checkpoint label
    pipeline: Optional[dict] = None         # the pipeline's state file (gate decisions), if any
    robustness: list[dict] = field(default_factory=list)  # query.robustness rows of the shown checkpoints


def split_list(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    values = [v.strip() for v in text.split(",") if v.strip()]
    return values or None


def short_labels(rows: list) -> dict[str, str]:
    """``base/stage@step`` a row; the checkpoint's own label is added where two rows would
    read the same (chart axes merge equal category names)."""
    def base(r) -> str:
        return f"{r.base_model}/{r.stage}" + (f"@{r.step}" if r.step is not None else "")

    counts: dict[str, int] = {}
    for r in rows:
        counts[base(r)] = counts.get(base(r), 0) + 1
    labels = {}
    for r in rows:
        label = base(r)
        if counts[label] > 1:
            label += f" ({Path(str(r.checkpoint).rstrip('/')).name or r.run_id})"
        labels[r.run_id] = label
    return labels


def pick_shown(rows: list) -> tuple[list, str]:
    if len(rows) <= ALL_IF_AT_MOST:
        return list(rows), f"all {len(rows)} checkpoints"
    best = [r for r in rows if r.best_in_stage]
    note = f"the best checkpoint of each stage ({len(best)} of {len(rows)} checkpoints)"
    if len(best) > MAX_SHOWN:
        best = sorted(best, key=lambda r: -_avg(r))[:MAX_SHOWN]
        note += f", the {MAX_SHOWN} with the highest headline score"
    return best, note


def _avg(row) -> float:
    return row.average if row.average is not None else float("-inf")


def collect(db_path: Path, filters: Filters, compare: Optional[tuple[str, str]] = None) -> ReportContent:
    db = query.open_index(db_path)  # unknown filter values: query names them (UserError)
    try:
        board = query.leaderboard(db, base_models=filters.base_models, stages=filters.stages,
                                  tasks=filters.tasks)
        if not board.rows:
            raise UserError(f"{where(db_path)}: no run matches the filters ({filters.describe()}); "
                            "loosen --base_model/--stage/--tasks")
        shown, note = pick_shown(board.rows)
        progression = query.progression(db, base_models=filters.base_models, tasks=filters.tasks)
        if filters.stages:  # progression() filters no stages; the report keeps to the asked ones
            progression = [p for p in progression if p["stage"] in filters.stages]
        wanted = set(board.tasks) if filters.tasks else None
        categories = {r.run_id: [c for c in query.category_scores(db, r.run_id)
                                 if wanted is None or c["task"] in wanted] for r in shown}
        main_metric = {**board.metrics, query.AVERAGE: query.AVERAGE}
        for rows in categories.values():  # a task with categories but no column: acc, else its first metric
            for task in {c["task"] for c in rows} - set(main_metric):
                metrics = sorted({c["metric"] for c in rows if c["task"] == task})
                main_metric[task] = "acc" if "acc" in metrics else metrics[0]
        content = ReportContent(db_path=where(db_path) if is_pg_url(db_path) else Path(db_path), filters=filters,
                                generated=time.strftime("%Y-%m-%d %H:%M:%S"), board=board, shown=shown,
                                shown_note=note, progression=progression, categories=categories,
                                main_metric=main_metric, labels=short_labels(board.rows),
                                robustness=robustness(db, [r.run_id for r in shown], main_metric))
        from .comparison import choose_comparison

        content.comparison, content.comparison_note = choose_comparison(db, board, compare)
        return content
    finally:
        db.close()
