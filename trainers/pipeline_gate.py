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
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from aimed.harness.gate import Verdict, change_words, choose_best
from aimed.harness.gate_policy import Policy, RankBy
from aimed.harness.results import atomic_write_text
from aimed.harness.verdicts import (CheckpointRecord, CheckRow, CheckStatus, Decision, DecisionKind, Failure,
                                    Promotion, StageVerdict)

VERDICT_FILE = "gate_verdict.json"
SUMMARY_FILE = "gate_summary.md"


def _f(x) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def gain(v: Verdict, rank: RankBy) -> Optional[float]:
    row = v.comparison.row(rank.task, rank.metric)
    if row is None:
        return None
    return _f(row.delta if row.higher_is_better else -row.delta)


def describe(row: CheckRow) -> str:
    """``demo_mcq/acc 0.2917 → 1.0000, significant gain (+0.7083, p <0.0001)``: the numbers
    and, in words, what the change is (a drop that is not significant says so)."""
    b, c, d = row.baseline, row.candidate, row.delta
    if None in (b, c, d):
        return f"{row.task}/{row.metric} no value"
    words = change_words(d, row.p_value, row.alpha, row.higher_is_better)
    return f"{row.task}/{row.metric} {b:.4f} → {c:.4f}, {words}"


def side_decision(stage: str, final: Path, scores: dict) -> Decision:
    figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items())
    return Decision(DecisionKind.SIDE, StageVerdict.REWARD_MODEL, True, str(final), None, str(final), None, None,
                    [], [], None, f"{stage} is a side stage (not gated): its last checkpoint {final.name} is the "
                                  "reward model" + (f" ({figures})" if figures else ""))


def gate_stage(checkpoints: list[Path], eval_runs: dict, parent_run: Path, policy: Policy,
               stage_dir: Path) -> tuple[list[CheckpointRecord], Decision]:
    """(one record a checkpoint, the decision). Raises UserError for a bad policy."""
    rank = policy.ranked
    scored = [(c, eval_runs.get(c)) for c in checkpoints]
    runs = [Path(r) for _, r in scored if r]
    records = [CheckpointRecord(str(c), _step(c), str(r) if r else None) for c, r in scored]
    if not runs:
        return records, Decision(DecisionKind.GATE, StageVerdict.FAILED, False, None, None, None, policy.source,
                                 policy.rank_by, [], [], None,
                                 "no checkpoint of this stage was scored (see the warnings above)")
    selection = choose_best(runs, parent_run, policy)
    by_run = dict(zip(runs, selection.verdicts))
    for rec in records:
        v = by_run.get(Path(rec.run_dir)) if rec.run_dir else None
        if v is not None:
            rec.passed, rec.promoted, rec.gain = v.passed, v.promoted, gain(v, rank)
    best = selection.best
    shown = best or selection.verdicts[-1]  # nothing passed: the last checkpoint's verdict tells why
    checks = [c.row() for c in shown.checks]
    shown_run = runs[next(i for i, v in enumerate(selection.verdicts) if v is shown)]
    ckpt = next(c for c, r in scored if r and Path(r) == shown_run)
    if best is None:
        verdict, failures = StageVerdict.FAILED, [r for r in checks if r.status == CheckStatus.FAIL]
        summary = f"no checkpoint passed; {ckpt.name}: " + "; ".join(f"{describe(r)}: {r.reason}" for r in failures)
    elif not best.promoted:
        verdict, failures = StageVerdict.NOT_PROMOTED, [r for r in checks if r.promotion == Promotion.NOT_MET]
        summary = f"{ckpt.name} passed but did not earn promotion: " + "; ".join(
            f"{r.task}/{r.metric} {r.reason}" for r in failures)
    else:
        verdict, failures = StageVerdict.PROMOTED, []
        ranked = shown.comparison.row(rank.task, rank.metric)  # the row it was chosen by, judged or not
        head = CheckRow(rank.task, rank.metric, _f(ranked.a), _f(ranked.b), _f(ranked.delta), [], _f(ranked.p_value),
                        ranked.test, ranked.higher_is_better, policy.alpha, CheckStatus.PASS, None, "") \
            if ranked is not None else (checks[0] if checks else None)
        passed = sum(v.passed for v in selection.verdicts)
        earned = "" if not any(r.promotion == Promotion.MET for r in checks) else ", gain required met"
        summary = (f"promoted {ckpt.name} ({passed} of {len(runs)} checkpoints passed{earned})"
                   + (f": {describe(head)}" if head else ""))
    go_on = verdict == StageVerdict.PROMOTED
    decision = Decision(DecisionKind.GATE, verdict, go_on, str(ckpt) if go_on else None,
                        str(shown_run) if go_on else None, str(ckpt), policy.source, policy.rank_by,
                        [Failure(r.task, r.metric, r.delta, r.reason) for r in failures], checks,
                        str(stage_dir / VERDICT_FILE), summary)
    atomic_write_text(stage_dir / VERDICT_FILE, json.dumps({**selection.to_dict(), "decision": asdict(decision)},
                                                           ensure_ascii=False, indent=1, default=str) + "\n")
    atomic_write_text(stage_dir / SUMMARY_FILE, shown.markdown())
    return records, decision


def _step(folder: Path) -> Optional[int]:
    tail = folder.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None
