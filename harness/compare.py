"""Compare two runs item by item: is B really better than A?

Items are paired by (task, item id) over the items both runs scored. For each task and
metric: both values over the paired items, delta = B - A, a paired bootstrap interval and
a paired test (``stats``: McNemar's exact test for 0/1 metrics such as ``acc``, the
sign-flip permutation test for ROUGE, BLEU, F1 and for groups). Groups get rows too (their
``score``, the mean of the members' main metrics, and their size-weighted shared metrics),
and so does the ``suite``: the unweighted mean of the main metrics of the run's top-level
tasks and groups, the number a team ranks checkpoints by. Then per-category deltas for
every annotation column, and the items whose main metric flipped, with both outputs.

Runs whose task version or data hash differ are refused: their items are not the same
questions, so a paired comparison means nothing. Torch-free.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .scoring.clean import CONTAMINATED
from .runfolder import RunFolder, read_run
from .stats import Stratum, is_binary, paired_bootstrap_ci, paired_test

MAX_CONTINUOUS_FLIPS = 50  # for a continuous main metric, the items that changed most


@dataclass
class MetricRow:
    task: str
    metric: str
    a: float
    b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n: int
    higher_is_better: bool
    significant: bool
    kind: str = "task"  # task, group or suite


@dataclass
class CategoryRow:
    task: str
    column: str
    category: str
    metric: str
    a: Optional[float]
    b: Optional[float]
    delta: Optional[float]
    n_a: int
    n_b: int


@dataclass
class Flip:
    task: str
    doc_id: Any
    id: str
    question: str
    target: str
    a_output: str
    b_output: str
    a_score: float
    b_score: float
    metric: str
    options: dict = field(default_factory=dict)


@dataclass
class Comparison:
    run_a: dict
    run_b: dict
    metrics: list[MetricRow]
    categories: list[CategoryRow]
    flips: list[Flip]
    notes: list[str]
    alpha: float
    n_boot: int
    seed: int
    main_metrics: dict[str, str] = field(default_factory=dict)
    # task -> (items flagged, items checked) in run B's records, for the tasks that were
    # checked against its training data (--contamination_data); the gate's max_contaminated
    contaminated: dict[str, tuple[int, int]] = field(default_factory=dict)
    only_clean: bool = False  # rows over the items neither run's training data contains
    # compare --judge: judge/pairwise.py's rows (B against A, both orders) and what judging cost
    pairwise: list = field(default_factory=list)
    judge: dict = field(default_factory=dict)

    def row(self, task: str, metric: str) -> Optional[MetricRow]:
        return next((r for r in self.metrics if r.task == task and r.metric == metric), None)

    def to_dict(self) -> dict:
        return {"run_a": self.run_a, "run_b": self.run_b,
                "metrics": [_clean(asdict(r)) for r in self.metrics],
                "categories": [_clean(asdict(r)) for r in self.categories],
                "flips": [_clean(asdict(f)) for f in self.flips],
                "main_metrics": self.main_metrics, "notes": self.notes,
                "contaminated": {t: {"flagged": f, "checked": n} for t, (f, n) in self.contaminated.items()},
                "only_clean": self.only_clean,
                **({"pairwise": [_clean(asdict(r)) for r in self.pairwise], "judge": self.judge}
                   if self.pairwise or self.judge else {}),
                "alpha": self.alpha, "n_boot": self.n_boot, "seed": self.seed}


def _clean(d: dict) -> dict:
    """NaN -> None, so the JSON is valid JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# ---- pairing ------------------------------------------------------------------------------
def _item_ids(records: list[dict]) -> Optional[list]:
    """Each record's item id (doc.id: stable across --limit and reordering), or None when
    some record has none or two share one."""
    ids = [r["doc"].get("id") if isinstance(r.get("doc"), dict) else None for r in records]
    if all(isinstance(i, (str, int)) for i in ids) and len(set(ids)) == len(ids):
        return ids
    return None


def _keyed_pair(a: list[dict], b: list[dict]) -> tuple[dict, dict]:
    """Both runs' records keyed alike: by item id when both carry ids (aimed-eval runs),
    else by doc_id (lm-eval's samples carry only the item's position)."""
    ia, ib = _item_ids(a), _item_ids(b)
    if ia is not None and ib is not None:
        return dict(zip(ia, a)), dict(zip(ib, b))
    return ({r.get("doc_id", i): r for i, r in enumerate(a)}, {r.get("doc_id", i): r for i, r in enumerate(b)})


@dataclass
class _TaskPairs:
    keys: list
    a: dict
    b: dict


def _version_key(v: Any) -> str:
    """lm-eval writes versions as floats (1.0), we as ints (1): the same version."""
    return f"{float(v):g}" if isinstance(v, (int, float)) else str(v)


def _check_same_task(task: str, ra: RunFolder, rb: RunFolder, notes: list[str]) -> None:
    va, vb = ra.version(task), rb.version(task)
    if va is not None and vb is not None and _version_key(va) != _version_key(vb):
        raise UserError(f"{task}: the runs differ in task version (A: {va}, B: {vb}); "
                        f"compare runs of the same task version")
    ha, hb = ra.task_meta(task).get("data_hash"), rb.task_meta(task).get("data_hash")
    if ha and hb and ha != hb:
        raise UserError(f"{task}: the runs differ in data_hash (A: {ha}, B: {hb}): they scored "
                        f"different data; compare runs over the same data files")
    if not (ha and hb):
        notes.append(f"{task}: data hash not recorded in both runs; items paired by id only")
    for fld in ("spec_hash", "mode"):
        fa, fb = ra.task_meta(task).get(fld), rb.task_meta(task).get(fld)
        if fa and fb and fa != fb:
            notes.append(f"{task}: the runs differ in {fld} (A: {fa}, B: {fb})")


def _aggregate_for(metric: str, values: list) -> Optional[Any]:
    """None for a mean metric; the registered corpus aggregate for a metric whose items
    carry sufficient statistics (BLEU); False when the values cannot be compared."""
    from .plugins import load_plugins
    from .scoring.metrics import METRICS, mean

    load_plugins()
    if metric in METRICS and METRICS.get(metric).aggregate is not mean:
        return METRICS.get(metric).aggregate
    if all(isinstance(v, (int, float)) for v in values):
        return None
    return False


# ---- the comparison ---------------------------------------------------------------------
def _shared_metrics(ra: RunFolder, rb: RunFolder, task: str) -> list[str]:
    """The metrics of ``task`` both runs report, in A's order; ``contaminated`` describes the
    training data, not the model, and is judged by the gate's max_contaminated instead."""
    return [m for m in ra.metrics(task) if m in rb.metrics(task) and m != CONTAMINATED]


def _flagged(record: dict) -> bool:
    return bool((record.get("contamination") or {}).get("flagged"))


def _checked(records: dict) -> bool:
    return bool(records) and all("contamination" in r for r in records.values())


class _Builder:
    def __init__(self, ra: RunFolder, rb: RunFolder, n_boot: int, seed: int, alpha: float,
                 only_clean: bool = False):
        self.ra, self.rb = ra, rb
        self.only_clean = only_clean
        self.n_boot, self.seed, self.alpha = n_boot, seed, alpha
        self.notes: list[str] = []
        self.pairs: dict[str, _TaskPairs] = {}
        self.strata: dict[tuple[str, str], Stratum] = {}  # (leaf task, metric) -> paired values
        self.hib: dict[tuple[str, str], bool] = {}

    def pair_tasks(self) -> list[str]:
        a_tasks, b_tasks = self.ra.leaf_tasks(), self.rb.leaf_tasks()
        common = [t for t in a_tasks if t in b_tasks]
        if not common:
            raise UserError(f"{self.ra.path} and {self.rb.path} share no task; compare runs of the same tasks")
        for t in [t for t in a_tasks if t not in common] + [t for t in b_tasks if t not in common]:
            self.notes.append(f"{t}: scored by only one run; left out")
        for t in common:
            _check_same_task(t, self.ra, self.rb, self.notes)
        for t in common:
            a, b = _keyed_pair(self.ra.samples(t), self.rb.samples(t))
            keys = [k for k in a if k in b]
            if len(keys) < max(len(a), len(b)):
                self.notes.append(f"{t}: {len(keys)} items scored by both runs (A: {len(a)}, B: {len(b)})")
            if self.only_clean:
                keys = self.clean_keys(t, keys, a, b)
            self.pairs[t] = _TaskPairs(keys, a, b)
        return common

    def clean_keys(self, task: str, keys: list, a: dict, b: dict) -> list:
        """The items neither run's training data contains (a run not checked flags none)."""
        if not (_checked(a) or _checked(b)):
            raise UserError(f"{task}: neither {self.ra.path} nor {self.rb.path} was checked against its training "
                            "data, so there is no clean subset; score with --contamination_data FILE, or judge "
                            "on: all")
        clean = [k for k in keys if not _flagged(a[k]) and not _flagged(b[k])]
        self.notes.append(f"{task}: on the clean subset, {len(clean)} of {len(keys)} items (left out: those "
                          "found in either checkpoint's training data)")
        return clean

    def leaf_stratum(self, task: str, metric: str) -> Optional[Stratum]:
        if (task, metric) not in self.strata:
            p = self.pairs[task]
            both = [(p.a[k].get(metric), p.b[k].get(metric)) for k in p.keys]
            both = [(x, y) for x, y in both if x is not None and y is not None]
            agg = _aggregate_for(metric, [v for xy in both for v in xy]) if both else False
            if agg is False:
                self.notes.append(f"{task}/{metric}: no per-item values both runs scored; left out")
                self.strata[(task, metric)] = None
            else:
                self.strata[(task, metric)] = Stratum([x for x, _ in both], [y for _, y in both], 1.0, agg)
            self.hib[(task, metric)] = self.ra.higher_is_better(task, metric)
        return self.strata[(task, metric)]

    def row(self, task: str, metric: str, strata: list[Stratum], hib: bool, kind: str) -> MetricRow:
        a = sum(s.weight * s.value(s.a) for s in strata)
        b = sum(s.weight * s.value(s.b) for s in strata)
        seed = self.seed + zlib.crc32(f"{task}/{metric}".encode()) % 100_000  # rows draw apart
        lo, hi = paired_bootstrap_ci(strata, self.n_boot, seed, self.alpha)
        p, test = paired_test(strata, self.n_boot, seed)
        n = sum(len(s.a) for s in strata)
        return MetricRow(task, metric, a, b, b - a, lo, hi, p, test, n, hib,
                         bool(p < self.alpha), kind)

    def weighted(self, parts: dict[str, float], metric_of) -> Optional[list[Stratum]]:
        """Strata for a weighted sum over leaf tasks; None if a leaf lacks the metric."""
        out = []
        for leaf, w in parts.items():
            s = self.leaf_stratum(leaf, metric_of(leaf)) if leaf in self.pairs else None
            if s is None:
                return None
            out.append(Stratum(s.a, s.b, w, s.aggregate))
        return out


def score_weights(name: str, groups: dict[str, list[str]]) -> dict[str, float]:
    """Leaf weights of a group's ``score``: the unweighted mean of its members' main metrics,
    a nested group counting as one member (as results.json computes it)."""
    if not groups.get(name):
        return {name: 1.0}
    out: dict[str, float] = {}
    for member in groups[name]:
        for leaf, w in score_weights(member, groups).items():
            out[leaf] = out.get(leaf, 0.0) + w / len(groups[name])
    return out


def _group_rows(bld: _Builder, common: list[str], main: dict[str, str]) -> list[MetricRow]:
    groups = {g: m for g, m in bld.ra.groups().items() if bld.rb.groups().get(g) == m}
    rows = []
    for g in groups:
        leaves = score_weights(g, groups)
        if not all(leaf in common for leaf in leaves):
            continue
        for metric in _shared_metrics(bld.ra, bld.rb, g):
            if metric == "score":
                strata = bld.weighted(leaves, lambda leaf: main[leaf])
                hib = all(bld.hib.get((leaf, main[leaf]), True) for leaf in leaves)
            else:  # a shared metric: size-weighted over the members' items
                sizes = {leaf: len(bld.pairs[leaf].keys) for leaf in leaves}
                strata = bld.weighted({k: v / sum(sizes.values()) for k, v in sizes.items()}, lambda leaf: metric)
                hib = all(bld.hib.get((leaf, metric), True) for leaf in leaves)
            if strata:
                rows.append(bld.row(g, metric, strata, hib, "group"))
    return rows


def _suite_row(bld: _Builder, common: list[str], main: dict[str, str]) -> Optional[MetricRow]:
    groups = {g: m for g, m in bld.ra.groups().items() if bld.rb.groups().get(g) == m}
    members = {m for ms in groups.values() for m in ms}
    top = [g for g in groups if g not in members and all(x in common for x in score_weights(g, groups))]
    covered = {leaf for g in top for leaf in score_weights(g, groups)}
    top += [t for t in common if t not in covered]
    weights: dict[str, float] = {}
    for entry in top:
        for leaf, w in score_weights(entry, groups).items():
            weights[leaf] = weights.get(leaf, 0.0) + w / len(top)
    strata = bld.weighted(weights, lambda leaf: main[leaf])
    if not strata:
        return None
    if not all(bld.hib.get((leaf, main[leaf]), True) for leaf in weights):
        bld.notes.append("suite: a main metric is lower-is-better; no suite score")
        return None
    return bld.row("suite", "score", strata, True, "suite")


def _value(like: Stratum, values: list) -> float:
    """``values`` aggregated the way the stratum ``like`` aggregates (mean or corpus)."""
    return Stratum(values, values, 1.0, like.aggregate).value(values)


def _categories(bld: _Builder, task: str, metric: str) -> list[CategoryRow]:
    p = bld.pairs[task]
    s = bld.strata.get((task, metric))
    if s is None:
        return []
    cells: dict[tuple[str, str], tuple[list, list]] = {}
    for k in p.keys:
        cats = (p.a[k].get("doc") or {}).get("categories") or {}
        for column, category in cats.items():
            if category in (None, ""):
                continue
            a_vals, b_vals = cells.setdefault((column, str(category)), ([], []))
            if p.a[k].get(metric) is not None:
                a_vals.append(p.a[k][metric])
            if p.b[k].get(metric) is not None:
                b_vals.append(p.b[k][metric])
    rows = []
    for (column, category), (a_vals, b_vals) in sorted(cells.items()):
        if not a_vals and not b_vals:
            continue
        a = _value(s, a_vals) if a_vals else None
        b = _value(s, b_vals) if b_vals else None
        rows.append(CategoryRow(task, column, category, metric, a, b,
                                None if a is None or b is None else b - a, len(a_vals), len(b_vals)))
    return rows


def _render_output(record: dict) -> str:
    out = record.get("filtered_resps")
    if isinstance(out, list) and all(isinstance(x, str) for x in out):
        return "".join(out) if all(len(x) == 1 for x in out) else " | ".join(out)
    return out if isinstance(out, str) else json_short(out)


def json_short(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)[:500]


def _flips(bld: _Builder, task: str, metric: str, max_flips: int) -> list[Flip]:
    s = bld.strata.get((task, metric))
    if s is None:
        return []
    p = bld.pairs[task]
    changed = []
    for k in p.keys:
        ra, rb = p.a[k], p.b[k]
        if ra.get(metric) is None or rb.get(metric) is None:
            continue
        x, y = _value(s, [ra[metric]]), _value(s, [rb[metric]])
        if x != y:
            changed.append((k, x, y))
    if not (is_binary(s.a) and is_binary(s.b)):  # continuous: the largest changes
        changed = sorted(changed, key=lambda c: -abs(c[2] - c[1]))[:max_flips]
    out = []
    for k, x, y in changed:
        ra, rb = p.a[k], p.b[k]
        doc = ra.get("doc") if isinstance(ra.get("doc"), dict) else {}
        target = ra.get("target")
        out.append(Flip(task, ra.get("doc_id", k), str(doc.get("id", k)), str(doc.get("question", "")),
                        target if isinstance(target, str) else json_short(target),
                        _render_output(ra), _render_output(rb), x, y, metric, doc.get("options") or {}))
    return out


def compare_runs(run_a: Path, run_b: Path, *, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05,
                 max_flips: int = MAX_CONTINUOUS_FLIPS, only_clean: bool = False) -> Comparison:
    """Compare run B against run A (delta = B - A) over the items both scored; ``only_clean``:
    over those of them that neither checkpoint's training data contains."""
    if n_boot < 1:
        raise UserError(f"--n_boot {n_boot}: give at least 1 resample (2000 is the default)")
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: give a level between 0 and 1, e.g. 0.05")
    ra, rb = read_run(Path(run_a)), read_run(Path(run_b))
    bld = _Builder(ra, rb, n_boot, seed, alpha, only_clean)
    common = bld.pair_tasks()
    rows: list[MetricRow] = []
    main: dict[str, str] = {}
    for t in common:
        for metric in _shared_metrics(ra, rb, t):
            s = bld.leaf_stratum(t, metric)
            if s is not None:
                rows.append(bld.row(t, metric, [s], bld.hib[(t, metric)], "task"))
        m = ra.main_metric(t)
        if m and bld.leaf_stratum(t, m) is not None:
            main[t] = m
    rows += _group_rows(bld, [t for t in common if t in main], main)
    suite = _suite_row(bld, [t for t in common if t in main], main)
    if suite:
        rows.append(suite)
    categories = [c for (t, m) in list(bld.strata) for c in _categories(bld, t, m)]
    flips = [f for t in common if t in main for f in _flips(bld, t, main[t], max_flips)]
    contaminated = {t: (sum(_flagged(r) for r in bld.pairs[t].b.values()), len(bld.pairs[t].b))
                    for t in common if _checked(bld.pairs[t].b)}
    return Comparison(ra.ref(), rb.ref(), rows, categories, flips, bld.notes, alpha, n_boot, seed, main,
                      contaminated, only_clean)
