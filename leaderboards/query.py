"""Read the results index: leaderboards, stage progression, per-category scores.

sqlite3 only (no torch, no pandas): the leaderboard command, the HTML report and the
dashboard all start from here, and `aimed-eval leaderboard` must print in well under a
second with hundreds of runs. The heavy lifting is SQL: the latest run of each checkpoint
is a window function over ``runs``, and each task's main metric comes from one join of
``task_meta`` with ``scores`` on their primary keys.

What a leaderboard is:
- one row a checkpoint (same fingerprint, same weights): its latest run (with ``tasks``:
  its latest run that scored any of them);
- one column a task or group the rows scored, showing its main metric (a group: ``score``,
  the mean of its members' main metrics); leaf tasks first, then groups;
- ``headline``: the suite column, a group whose members (``group_subtasks`` of a run's
  results.json) take in every leaf column shown (``medqa`` when the suite was run); None
  when no group does (``--tasks cmexam,medterm``);
- ``average``: the one headline number of a row: the suite's score where there is a
  headline (so the leaderboard never shows two "overall" numbers that disagree: the
  suite's mean of its members and a mean of all leaves), else the mean of the leaf
  columns' main metrics (of the group columns when only groups are shown); None unless
  the row has every one of them in the column's metric, so averages compare like with
  like (a cell may hold another metric: an lm-eval run of an exported task that lm-eval
  scores with chrf where aimed-eval uses rougeL);
- ``best_in_stage``: the highest average of each (base model, stage);
- a predict_only task's column (``cmb_test``; main metric ``index.PREDICT_ONLY``) has no
  number in any row, is left out of the average and of what a headline must cover, and
  has no progression points.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

from aimed.harness.errors import UserError, did_you_mean
from aimed.harness.index import PREDICT_ONLY, connect
from aimed.harness.index_pg import PgIndex, is_pg_url

# Training stages in pipeline order; 'base' (the untouched base model) first, stages
# outside this list after them by name, 'unknown' last.
STAGE_ORDER = ("base", "pt", "sft", "rm", "ppo", "dpo")
AVERAGE = "average"  # the pseudo-task of progression rows that carry the suite average

DB = Union[sqlite3.Connection, str, Path]


@dataclass
class Row:
    run_id: str
    run_dir: str
    checkpoint: str
    fingerprint: str
    base_model: str
    stage: str
    step: Optional[int]
    parent: Optional[str]
    date: float
    model: str
    source: str
    stage_index: int
    scores: dict = field(default_factory=dict)  # task -> (value, stderr, metric)
    counts: dict = field(default_factory=dict)  # task -> items its main metric was computed on (None: unknown)
    average: Optional[float] = None
    best_in_stage: bool = False


@dataclass
class Leaderboard:
    tasks: list[str]            # columns, in display order
    metrics: dict[str, str]     # column -> its main metric
    groups: list[str]           # the columns that are groups
    rows: list[Row]
    headline: Optional[str] = None                              # the suite column, if any
    members: dict[str, list[str]] = field(default_factory=dict)  # group -> its direct members

    def to_dict(self) -> dict:
        return {"tasks": self.tasks, "metrics": self.metrics, "groups": self.groups,
                "headline": self.headline, "members": self.members,
                "rows": [{**asdict(r), "scores": {t: {"value": v, "stderr": se, "metric": m}
                                                  for t, (v, se, m) in r.scores.items()}}
                         for r in self.rows]}


def open_index(path: Union[str, Path]):
    """The index at ``path`` (a file, or a PostgreSQL URL), read-only; UserError if it is
    missing or not an index."""
    db = connect(path if is_pg_url(path) else Path(path).expanduser(), readonly=True)
    db.row_factory = sqlite3.Row  # rows by name (PostgreSQL's rows are so already)
    return db


def _conn(db: DB):
    if isinstance(db, sqlite3.Connection):
        db.row_factory = sqlite3.Row
        return db
    if isinstance(db, PgIndex):
        return db
    return open_index(db)


def stage_index(stage: str, others: Iterable[str] = ()) -> int:
    if stage in STAGE_ORDER:
        return STAGE_ORDER.index(stage)
    if stage == "unknown":
        return 1000
    return len(STAGE_ORDER) + sorted(set(others) - set(STAGE_ORDER) - {"unknown"}).index(stage)


def _check_names(db: sqlite3.Connection, sql: str, given: Optional[list[str]], what: str, flag: str) -> None:
    if not given:
        return
    known = sorted(r[0] for r in db.execute(sql))
    for name in given:
        if name not in known:
            listing = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
            raise UserError(f"{flag} {name}: no {what} of that name in the index"
                            f"{did_you_mean(name, known)}; known: {listing or 'none'}")


def _in(column: str, values: Optional[list[str]]) -> tuple[str, list]:
    if not values:
        return "", []
    return f" AND {column} IN ({','.join('?' * len(values))})", list(values)


def leaderboard(db: DB, base_models: Optional[list[str]] = None, stages: Optional[list[str]] = None,
                tasks: Optional[list[str]] = None) -> Leaderboard:
    """The leaderboard of the index, filtered by base models, stages and tasks (None: all)."""
    db = _conn(db)
    _check_names(db, "SELECT DISTINCT base_model FROM runs", base_models, "base model", "--base_model")
    _check_names(db, "SELECT DISTINCT stage FROM runs", stages, "stage", "--stage")
    _check_names(db, "SELECT DISTINCT task FROM task_meta", tasks, "task or group", "--tasks")
    where, params = "", []
    for clause, values in (_in("base_model", base_models), _in("stage", stages)):
        where, params = where + clause, params + values
    if tasks:  # a checkpoint's latest run among those that scored one of the tasks
        clause, values = _in("task", tasks)
        where, params = where + f" AND run_id IN (SELECT run_id FROM task_meta WHERE 1=1{clause})", params + values
    latest = ("SELECT run_id FROM (SELECT run_id, ROW_NUMBER() OVER (PARTITION BY fingerprint "
              f"ORDER BY date DESC, run_id DESC) AS k FROM runs WHERE 1=1{where}) AS ranked WHERE k = 1")
    with _gc_paused():  # ~10^5 cell tuples and no cycles: the collector's passes over them are waste
        return _read_board(db, latest, params, tasks)


@contextmanager
def _gc_paused():
    """The cyclic garbage collector off while a leaderboard is read and assembled (measured:
    ~0.1-0.2 s of a 5,000 runs x 20 tasks board); as it was afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _read_board(db, latest: str, params: list, tasks: Optional[list[str]]) -> Leaderboard:
    # The latest-run CTE twice, not a temp table: the connection stays read-only and may be shared.
    runs = db.execute(f"WITH latest AS ({latest}) SELECT r.* FROM runs r JOIN latest USING (run_id)",
                      params).fetchall()
    task_clause, task_params = _in("tm.task", tasks)
    cells = _tuples(
        db, f"WITH latest AS ({latest}) "
        "SELECT tm.run_id, tm.task, tm.main_metric, tm.is_group, tm.position, s.value, s.stderr, s.n "
        "FROM latest l JOIN task_meta tm ON tm.run_id = l.run_id "
        "LEFT JOIN scores s ON s.run_id = tm.run_id AND s.task = tm.task AND s.metric = tm.main_metric "
        f"WHERE 1=1{task_clause}", params + task_params)
    return _assemble(runs, cells, tasks)


def _tuples(db, sql: str, params: list) -> list[tuple]:
    """The rows of a big query as plain tuples, on both backends: a leaderboard reads ~10^5
    cells, and a row object a cell (``sqlite3.Row``, the PostgreSQL layer's dict) costs more
    than the SQL (measured: 0.15 s of 1.1 s at 5,000 runs x 20 tasks on PostgreSQL)."""
    if isinstance(db, PgIndex):
        return db.fetch_tuples(sql, params)
    cursor = db.cursor()
    cursor.row_factory = None
    return cursor.execute(sql, params).fetchall()


def _assemble(runs: list, cells: list[tuple], wanted: Optional[list[str]]) -> Leaderboard:
    """``cells``: (run_id, task, main_metric, is_group, position, value, stderr, n) tuples.
    The per-cell loop is the hot path (one pass, no object a cell); the column order and
    each column's metric come from the few distinct (task, is_group, position, metric)."""
    all_stages = {r["stage"] for r in runs}
    rows = {r["run_id"]: Row(run_id=r["run_id"], run_dir=r["run_dir"], checkpoint=r["checkpoint"],
                             fingerprint=r["fingerprint"], base_model=r["base_model"], stage=r["stage"],
                             step=r["step"], parent=r["parent"], date=r["date"], model=r["model"],
                             source=r["source"], stage_index=stage_index(r["stage"], all_stages))
            for r in runs}
    by_run = {run_id: (row.scores, row.counts) for run_id, row in rows.items()}
    for run_id, task, metric, _, _, value, stderr, n in cells:
        scores, counts = by_run[run_id]
        scores[task] = (value, stderr, metric)
        counts[task] = n
    # in first-seen order, so a tie of metric votes goes as Counter.most_common would
    combos = Counter((c[1], c[3], c[4], c[2]) for c in cells)
    order: dict[str, tuple] = {}
    metric_votes: dict[str, Counter] = {}
    for (task, is_group, position, metric), count in combos.items():
        key = (is_group, position, task)
        order[task] = min(order.get(task, key), key)
        metric_votes.setdefault(task, Counter())[metric] += count
    columns = sorted(order, key=lambda t: order[t])
    if wanted:  # the user's order
        columns = [t for t in wanted if t in order]
    metrics = {t: metric_votes[t].most_common(1)[0][0] for t in columns}
    # a predict_only column has no number to average (its cells stay empty)
    scored = [t for t in columns if metrics[t] != PREDICT_ONLY]
    groups = [t for t in columns if order[t][0]]
    leaves = [t for t in scored if not order[t][0]] or [g for g in groups if g in scored]
    members = _group_members(runs, groups)
    headline = _suite(groups, members, [t for t in scored if not order[t][0]])
    averaged = [headline] if headline else leaves
    for row in rows.values():  # a cell in another metric (an lm-eval import, say) is no part of it
        vals = [row.scores[t][0] if t in row.scores and row.scores[t][2] == metrics[t] else None for t in averaged]
        if averaged and all(v is not None for v in vals):
            row.average = sum(vals) / len(vals)
    ordered = sorted(rows.values(), key=lambda r: (r.base_model, r.stage_index, r.stage,
                                                   -1 if r.step is None else r.step, r.date))
    best: dict[tuple, Row] = {}
    for row in ordered:
        key = (row.base_model, row.stage)
        if row.average is not None and (key not in best or row.average > best[key].average):
            best[key] = row
    for row in best.values():
        row.best_in_stage = True
    return Leaderboard(tasks=columns, metrics=metrics, groups=groups, rows=ordered, headline=headline,
                       members={g: members[g] for g in groups if g in members})


def _group_members(runs: list, groups: list[str]) -> dict[str, list[str]]:
    """Each group's direct members, from ``group_subtasks`` of the latest results.json that
    has the group (the index keeps no membership). One small file read a group at most; a
    run folder that has moved leaves the group without members (no headline from it)."""
    out: dict[str, list[str]] = {}
    for r in sorted(runs, key=lambda r: -r["date"]):
        wanted = [g for g in groups if g not in out and g in json.loads(r["tasks"] or "[]")]
        if not wanted:
            continue
        path = Path(r["run_dir"])
        try:
            data = json.loads((path / "results.json" if path.is_dir() else path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        subtasks = data.get("group_subtasks") if isinstance(data, dict) else None
        for g in wanted:
            if isinstance(subtasks, dict) and isinstance(subtasks.get(g), list):
                out[g] = [str(m) for m in subtasks[g]]
        if len(out) == len(groups):
            break
    return out


def _suite(groups: list[str], members: dict[str, list[str]], leaves: list[str]) -> Optional[str]:
    """The outermost group whose members, expanded, take in every leaf column shown."""
    def expand(name: str, seen: frozenset = frozenset()) -> set[str]:
        if name in seen or name not in members:
            return {name}
        return set().union(*(expand(m, seen | {name}) for m in members[name])) if members[name] else {name}

    covering = [g for g in groups if leaves and set(leaves) <= expand(g)]
    return max(covering, key=lambda g: len(expand(g)), default=None)


def progression(db: DB, base_models: Optional[list[str]] = None, tasks: Optional[list[str]] = None,
                stages: Optional[list[str]] = None) -> list[dict]:
    """Score against training step, stage after stage: one dict a checkpoint and column
    (plus task ``average`` for the average of the columns, where no suite column holds the
    headline number already), ordered base model, stage, step, date.
    ``x`` counts the checkpoints of a base model along its path (0, 1, 2, ...)."""
    board = leaderboard(db, base_models=base_models, stages=stages, tasks=tasks)
    out = []
    x: Counter = Counter()
    for row in board.rows:
        base = {"base_model": row.base_model, "stage": row.stage, "stage_index": row.stage_index,
                "step": row.step, "x": x[row.base_model], "run_id": row.run_id, "checkpoint": row.checkpoint}
        x[row.base_model] += 1
        for task in board.tasks:
            if task in row.scores and board.metrics[task] != PREDICT_ONLY:  # predict-only: no score to plot
                value, se, metric = row.scores[task]
                out.append({**base, "task": task, "metric": metric, "value": value, "stderr": se,
                            "n": row.counts.get(task)})
        if row.average is not None and not board.headline:  # with a suite, its line is the headline
            out.append({**base, "task": AVERAGE, "metric": AVERAGE, "value": row.average, "stderr": None, "n": None})
    return out


def category_scores(db: DB, run_id: str, task: Optional[str] = None) -> list[dict]:
    """Per-category metrics of one run (all tasks, or one): task, column, category, metric,
    value, stderr, n."""
    db = _conn(db)
    run_id = run_info(db, run_id)["run_id"]
    clause, params = _in("task", [task] if task else None)
    rows = db.execute('SELECT task, column_name AS "column", category, metric, value, stderr, n FROM categories '
                      f"WHERE run_id = ?{clause} ORDER BY task, column_name, category, metric",
                      [run_id, *params])
    return [dict(r) for r in rows]


def run_info(db: DB, run_id: str) -> dict:
    """The ``runs`` row of a run (a unique prefix of its id will do); ``tasks`` and
    ``config`` decoded."""
    db = _conn(db)
    found = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchall() or \
        db.execute("SELECT * FROM runs WHERE run_id LIKE ? LIMIT 2", (run_id.replace("%", "") + "%",)).fetchall()
    if len(found) != 1:
        why = "matches several runs; give more of it" if found else "is not in the index"
        raise UserError(f"run id {run_id!r} {why}; `aimed-eval leaderboard --format json` lists run ids")
    info = dict(found[0])
    info["tasks"] = json.loads(info["tasks"])
    info["config"] = json.loads(info["config"])
    return info


def all_scores(db: DB, run_ids: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """run_id -> task -> metric -> value of every metric the runs recorded (``leaderboard
    --all_metrics``); standard errors left out."""
    db = _conn(db)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for start in range(0, len(run_ids), 500):  # SQLite's bound-parameter limit
        chunk = run_ids[start:start + 500]
        for r in db.execute(f"SELECT run_id, task, metric, value FROM scores WHERE run_id IN "
                            f"({','.join('?' * len(chunk))})", chunk):
            out.setdefault(r["run_id"], {}).setdefault(r["task"], {})[r["metric"]] = r["value"]
    return out


DATE_FORMAT = "%Y-%m-%d %H:%M"  # the one date format of every leaderboard (table, Markdown, CSV, HTML, dashboard)


def date_text(value, missing: str = "–") -> str:
    """A run's date (unix time) in local time, ``2025-06-01 14:05``; ``missing`` for none."""
    import time

    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return time.strftime(DATE_FORMAT, time.localtime(value))
    return missing if value in (None, "", 0) else str(value)
