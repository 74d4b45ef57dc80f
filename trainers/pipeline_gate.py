"""The gate between two pipeline stages: which checkpoint of a stage is promoted, and
whether the next stage starts.

Every scored checkpoint of the stage is judged against the parent's run by the harness's
gate (``choose_best``: the best that passes, promoted ones first, then by the policy's
``rank_by`` gain). The line goes on only when that checkpoint is *promoted*: it passes
(no judged drop too large) and reaches every ``min_gain`` the policy asks. The whole
selection is written next to the stage (``gate_verdict.json``, ``gate_summary.md``) and
a digest goes into the pipeline state for the report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from aimed.harness.gate import Check, Verdict, change_words, choose_best
from aimed.harness.gate_policy import Policy
from aimed.harness.results import atomic_write_text

VERDICT_FILE = "gate_verdict.json"
SUMMARY_FILE = "gate_summary.md"


def _f(x) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def check_row(c: Check) -> dict:
    return {"task": c.task, "metric": c.metric, "baseline": _f(c.baseline), "candidate": _f(c.candidate),
            "delta": _f(c.delta), "ci": [_f(c.ci_low), _f(c.ci_high)], "p_value": _f(c.p_value), "test": c.test,
            "higher_is_better": c.higher_is_better, "alpha": c.alpha, "status": c.status, "promotion": c.promotion, "reason": c.reason}


def gain(v: Verdict, rank_by: str) -> Optional[float]:
    task, _, metric = rank_by.partition("/")
    row = v.comparison.row(task, metric)
    if row is None:
        return None
    return _f(row.delta if row.higher_is_better else -row.delta)


def describe(row: dict, alpha: float) -> str:
    """``demo_mcq/acc 0.2917 → 1.0000, significant gain (+0.7083, p <0.0001)``: the numbers
    and, in words, what the change is (a drop that is not significant says so)."""
    b, c, d = row["baseline"], row["candidate"], row["delta"]
    if None in (b, c, d):
        return f"{row['task']}/{row['metric']} no value"
    words = change_words(d, row["p_value"], alpha, row.get("higher_is_better", True))
    return f"{row['task']}/{row['metric']} {b:.4f} → {c:.4f}, {words}"


def side_decision(stage: str, final: Path, scores: dict) -> dict:
    figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
    return {"kind": "side", "verdict": "reward model", "go_on": True, "promoted_checkpoint": str(final),
            "promoted_run": None, "policy": None, "rank_by": None, "failures": [], "checks": [],
            "verdict_file": None,
            "summary": f"{stage} is a side stage (not gated): its last checkpoint {final.name} is the reward model"
                       + (f" ({figures})" if figures else "")}


def gate_stage(checkpoints: list[Path], eval_runs: dict, parent_run: Path, policy: Policy,
               stage_dir: Path) -> tuple[list[dict], dict]:
    """(one record a checkpoint, the decision). Raises UserError for a bad policy."""
    scored = [(c, eval_runs.get(c)) for c in checkpoints]
    runs = [Path(r) for _, r in scored if r]
    records = [{"path": str(c), "step": _step(c), "run_dir": str(r) if r else None, "passed": None,
                "promoted": None, "gain": None} for c, r in scored]
    if not runs:
        return records, {"kind": "gate", "verdict": "failed", "go_on": False, "promoted_checkpoint": None,
                         "promoted_run": None, "policy": policy.source, "rank_by": policy.rank_by,
                         "failures": [], "checks": [], "verdict_file": None,
                         "summary": "no checkpoint of this stage was scored (see the warnings above)"}
    selection = choose_best(runs, parent_run, policy)
    by_run = dict(zip(runs, selection.verdicts))
    for rec in records:
        v = by_run.get(Path(rec["run_dir"])) if rec["run_dir"] else None
        if v is not None:
            rec.update(passed=v.passed, promoted=v.promoted, gain=gain(v, policy.rank_by))
    best = selection.best
    shown = best or selection.verdicts[-1]  # nothing passed: the last checkpoint's verdict tells why
    checks = [check_row(c) for c in shown.checks]
    shown_run = runs[next(i for i, v in enumerate(selection.verdicts) if v is shown)]
    ckpt = next(c for c, r in scored if r and Path(r) == shown_run)
    if best is None:
        verdict, go_on = "failed", False
        failures = [r for r in checks if r["status"] == "fail"]
        summary = f"no checkpoint passed; {ckpt.name}: " + "; ".join(
            f"{describe(r, r['alpha'])}: {r['reason']}" for r in failures)
    elif not best.promoted:
        verdict, go_on = "not promoted", False
        failures = [r for r in checks if r["promotion"] == "not met"]
        summary = f"{ckpt.name} passed but did not earn promotion: " + "; ".join(
            f"{r['task']}/{r['metric']} {r['reason']}" for r in failures)
    else:
        verdict, go_on, failures = "promoted", True, []
        task, _, metric = policy.rank_by.partition("/")
        ranked = shown.comparison.row(task, metric)  # the row it was chosen by, judged or not
        head = [{"task": task, "metric": metric, "baseline": _f(ranked.a), "candidate": _f(ranked.b),
                 "delta": _f(ranked.delta), "p_value": _f(ranked.p_value), "higher_is_better": ranked.higher_is_better}
                ] if ranked is not None else checks[:1]
        passed = sum(v.passed for v in selection.verdicts)
        earned = "" if not any(r["promotion"] == "met" for r in checks) else ", gain required met"
        summary = (f"promoted {ckpt.name} ({passed} of {len(runs)} checkpoints passed{earned})"
                   + (f": {describe(head[0], policy.alpha)}" if head else ""))
    decision = {"kind": "gate", "verdict": verdict, "go_on": go_on,
                "promoted_checkpoint": str(ckpt) if go_on else None,
                "promoted_run": str(shown_run) if go_on else None,
                "candidate": str(ckpt), "policy": policy.source, "rank_by": policy.rank_by,
                "failures": [{k: r[k] for k in ("task", "metric", "delta", "reason")} for r in failures],
                "checks": checks, "verdict_file": str(stage_dir / VERDICT_FILE), "summary": summary}
    atomic_write_text(stage_dir / VERDICT_FILE, json.dumps({**selection.to_dict(), "decision": decision},
                                                           ensure_ascii=False, indent=1, default=str) + "\n")
    atomic_write_text(stage_dir / SUMMARY_FILE, shown.markdown())
    return records, decision


def _step(folder: Path) -> Optional[int]:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
