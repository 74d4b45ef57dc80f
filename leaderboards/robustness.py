"""What a run says about whether its gains are real: the main metric beside its value under
every option order (``--circular``) and on the items the checkpoint's training data does not
contain (``--contamination_data``). Read from the index; the report and the dashboard's
drill-down both show these rows."""

from __future__ import annotations

from typing import Optional

from aimed.harness.stats import score_interval95

from .query import DB, _conn

METRICS = ("acc_circular", "order_sensitivity", "contaminated")
NOTE = ("Circular: right under every cyclic rotation of the options (--circular); order-sensitive: share of "
        "items whose chosen option changes with the order (lower is better); clean: the main metric on the "
        "items the checkpoint's training data does not contain; contaminated: share of items found in it "
        "(--contamination_data). Values with their 95% intervals.")
HEADER = ["checkpoint", "task", "metric", "all items", "circular", "order-sensitive", "clean", "contaminated"]
Cell = Optional[tuple]  # (value, stderr, n) or None


def robustness(db: DB, run_ids: list[str], main_metrics: dict[str, str]) -> list[dict]:
    """For each run and leaf task that reports CircularEval or the clean subset: ``run_id,
    task, metric`` (the task's main one) and ``main``, ``main_clean``, ``acc_circular``,
    ``order_sensitivity``, ``contaminated``, each ``(value, stderr, n)`` or None."""
    db = _conn(db)
    out = []
    for run_id in run_ids:
        found = {(r["task"], r["metric"]): (r["value"], r["stderr"], r["n"]) for r in db.execute(
            "SELECT task, metric, value, stderr, n FROM scores WHERE run_id = ? AND is_group = 0", (run_id,))}
        for task in sorted({t for t, _ in found}):
            metric = main_metrics.get(task) or "acc"
            cell = {"run_id": run_id, "task": task, "metric": metric, "main": found.get((task, metric)),
                    "main_clean": found.get((task, f"{metric}_clean"))}
            cell.update({m: found.get((task, m)) for m in METRICS})
            if any(cell[m] for m in METRICS):
                out.append(cell)
    return out


def _shown(found: Cell, metric: str) -> str:
    if not found or found[0] is None:
        return "–"
    value, se, n = found
    ci = score_interval95(value, se, n, metric)
    return f"{value:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def cells(row: dict, label: str) -> list[str]:
    """One checkpoint's task as a table row under :data:`HEADER`."""
    return [label, row["task"], row["metric"], _shown(row["main"], row["metric"]),
            _shown(row["acc_circular"], "acc_circular"), _shown(row["order_sensitivity"], "order_sensitivity"),
            _shown(row["main_clean"], row["metric"]), _shown(row["contaminated"], "contaminated")]
