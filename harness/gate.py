"""The gate: may a candidate checkpoint replace its baseline (CI), or go on to the next
training stage (promotion)? Torch-free; the pipeline calls ``gate`` and ``choose_best``.

The candidate is compared with the baseline item by item (``compare_runs(baseline,
candidate)``: delta = candidate - baseline) and every row of the comparison is judged by
the policy's rule for it (``gate_policy``). The verdict *passes* when no judged row fails,
and *promotes* when it passes and every rule that asks a ``min_gain`` got it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .compare import Comparison, MetricRow, compare_runs
from .compare_format import clip, flip_rows, interval, md_table, num, pval, signed
from .errors import UserError
from .gate_policy import DEFAULT, Policy, Rule, check_names, load_policy
from .verdicts import EPS, Check, CheckStatus, Promotion, Verdict

__all__ = ["Check", "Verdict", "Selection", "gate", "choose_best", "change_words", "check_words",
           "render_markdown"]


def change_words(delta: Optional[float], p_value: Optional[float], alpha: float, higher_is_better: bool = True,
                 numbers: bool = True) -> str:
    """What a difference means, in words: ``no significant drop (-0.0148, p 0.8730)``,
    ``significant gain (+0.7917, p <0.0001)``; ``numbers=False`` leaves out the brackets
    (a table that shows them already). A drop is a change for the worse, whichever way
    the metric goes."""
    if delta is None or math.isnan(delta):
        return "no value"
    significant = p_value is not None and not math.isnan(p_value) and p_value < alpha
    worse = -delta if higher_is_better else delta
    if abs(worse) <= EPS:
        words = "no change"
    elif worse > 0:
        words = "significant drop" if significant else "no significant drop"
    else:
        words = "significant gain" if significant else "gain, not significant"
    return f"{words} ({signed(delta)}, p {pval(p_value)})" if numbers else words


def check_words(c: Check) -> str:
    """A gate row's outcome in words: ``pass: no significant drop``, ``fail: significant drop``,
    ``pass: significant gain, gain required met`` (never a tick beside a drop)."""
    if c.metric == CONTAMINATED_ITEMS:
        return f"{c.status}: {c.reason}"
    words = f"{c.status}: {change_words(c.delta, c.p_value, c.alpha, c.higher_is_better, numbers=False)}"
    if c.status == CheckStatus.PASS and c.max_drop is not None and EPS < c.drop <= c.max_drop + EPS:
        words += f", within max_drop {c.max_drop:g}"
    if c.promotion is not None:
        words += f", gain required {c.promotion}"
    return words


CONTAMINATED_ITEMS = "contaminated_items"


def _contamination_check(comp: Comparison, pol: Policy) -> Check:
    """``max_contaminated``: the eval items the candidate's training data holds, counted over
    the tasks its run checked, against the policy's limit."""
    if not comp.contaminated:
        raise UserError(f"{pol.source}: max_contaminated {pol.max_contaminated}: {comp.run_b['run_dir']} was not "
                        "checked against its training data; score it with --contamination_data FILE")
    flagged = sum(f for f, _ in comp.contaminated.values())
    checked = sum(n for _, n in comp.contaminated.values())
    row = MetricRow("suite", CONTAMINATED_ITEMS, math.nan, float(flagged), math.nan, math.nan, math.nan, math.nan,
                    "count", checked, False, False, "suite")
    check = Check(row, "max_contaminated", None, False, None, pol.alpha, CheckStatus.PASS,
                  reason=f"{flagged} of {checked} eval items found in the training data "
                         f"(max_contaminated {pol.max_contaminated})")
    if flagged > pol.max_contaminated:
        check.status = CheckStatus.FAIL
    return check


def _judge(row: MetricRow, name: str, rule: Rule, policy: Policy) -> Check:
    alpha = rule.alpha if rule.alpha is not None else policy.alpha
    significant = not math.isnan(row.p_value) and row.p_value < alpha
    check = Check(row, name, rule.max_drop, rule.require_significant, rule.min_gain, alpha, CheckStatus.PASS)
    drop = check.drop
    if math.isnan(drop):
        check.reason = "no value to judge"
        return check
    if rule.max_drop is not None and drop > rule.max_drop + EPS:
        if significant or not rule.require_significant:
            check.status = CheckStatus.FAIL
            check.reason = (f"dropped {drop:.4f} (95% CI {interval(row.ci_low, row.ci_high)}, p {pval(row.p_value)}, "
                            f"{row.test}) > max_drop {rule.max_drop:g}")
        else:
            check.reason = f"dropped {drop:.4f}, not significant (p {pval(row.p_value)} >= {alpha:g})"
    if rule.min_gain is not None:
        met = -drop >= rule.min_gain - EPS and (significant or not rule.require_significant)
        check.promotion = Promotion.MET if met else Promotion.NOT_MET
        gain = f"gain {-drop:+.4f} vs min_gain {rule.min_gain:g}" + (
            f", p {pval(row.p_value)}" if rule.require_significant else "")
        check.reason = "; ".join(x for x in (check.reason, gain) if x)
    return check


def _as_policy(policy: Union[Policy, Path, str, None]) -> Policy:
    if policy is None:
        return DEFAULT
    if isinstance(policy, Policy):
        return policy
    return load_policy(Path(policy))


def gate(candidate: Path, baseline: Path, policy: Union[Policy, Path, str, None] = None, *,
         comparison: Optional[Comparison] = None) -> Verdict:
    """Judge ``candidate`` against ``baseline`` under ``policy`` (a Policy, a gates.yaml path,
    or None for the built-in default). Raises UserError for bad input."""
    pol = _as_policy(policy)
    comp = comparison or compare_runs(Path(baseline), Path(candidate), n_boot=pol.n_boot, seed=pol.seed,
                                      alpha=pol.alpha, only_clean=pol.on == "clean")
    check_names(pol, comp.metrics, pol.source)
    checks = []
    for row in comp.metrics:
        found = pol.rule_for(row.task, row.metric, row.kind)
        if found is not None:
            checks.append(_judge(row, found[0], found[1], pol))
    if pol.max_contaminated is not None:
        checks.append(_contamination_check(comp, pol))
    passed = not any(c.status == CheckStatus.FAIL for c in checks)
    promoted = passed and all(c.promotion != Promotion.NOT_MET for c in checks)
    return Verdict(passed, promoted, comp.run_b, comp.run_a, pol.source, pol.alpha, checks, comp)


@dataclass
class Selection:
    best: Optional[Verdict]
    verdicts: list[Verdict]   # in the order given
    rank_by: str

    def to_dict(self) -> dict:
        return {"best": self.best.candidate if self.best else None, "rank_by": self.rank_by,
                "verdicts": [v.to_dict() for v in self.verdicts]}


def choose_best(candidates: Sequence[Path], baseline: Path,
                policy: Union[Policy, Path, str, None] = None) -> Selection:
    """The best candidate that passes the gate: promoted ones first, then the largest gain
    on the policy's ``rank_by`` row (default: the suite score); the earlier one on a tie.
    ``best`` is None when none passes."""
    pol = _as_policy(policy)
    rank = pol.ranked
    verdicts = [gate(c, baseline, pol) for c in candidates]

    def gain(v: Verdict) -> float:
        row = v.comparison.row(rank.task, rank.metric)
        if row is None:
            raise UserError(f"{pol.source}: rank_by '{pol.rank_by}' is not a task/metric of "
                            f"{v.candidate['run_dir']}; name one the runs have, as task/metric")
        g = row.delta if row.higher_is_better else -row.delta
        return -math.inf if math.isnan(g) else g

    ranked = sorted((v for v in verdicts if v.passed), key=lambda v: (not v.promoted, -gain(v)))
    for v in verdicts:
        gain(v)  # a bad rank_by is an error even when nothing passes
    return Selection(ranked[0] if ranked else None, verdicts, pol.rank_by)


# ---- the summary a pull request gets ----------------------------------------------------
def _rule_text(c: Check) -> str:
    parts = []
    if c.max_drop is not None:
        parts.append(f"max_drop {c.max_drop:g}" + (" if significant" if c.require_significant else ""))
    if c.min_gain is not None:
        parts.append(f"min_gain {c.min_gain:g}")
    return f"`{c.rule}` " + ", ".join(parts) if parts else f"`{c.rule}`"


def render_markdown(v: Verdict, flips: int = 5) -> str:
    fails = v.failures
    if v.passed:
        asked = any(c.promotion is not None for c in v.checks)
        head = "## ✅ Gate passed" + ("" if not asked else " — promoted" if v.promoted else " — not promoted")
    else:
        head = "## ❌ Gate failed: " + ", ".join(f"{c.task}/{c.metric}" for c in fails)
    cand, base = v.candidate, v.baseline
    policy = v.policy if v.policy != "built-in default" else \
        f"built-in default (fail on any significant drop, p < {v.alpha:g})"
    out = [head, "",
           f"**Candidate** `{cand['run_dir']}` ({clip(cand['model'], 60)}) vs **baseline** "
           f"`{base['run_dir']}` ({clip(base['model'], 60)}) · policy: {policy}", ""]
    rows = [[check_words(c), c.task, c.metric,
             num(c.baseline), num(c.candidate), signed(c.delta), interval(c.ci_low, c.ci_high),
             pval(c.p_value), c.test, _rule_text(c)] for c in v.checks]
    out.append(md_table(("outcome", "task", "metric", "baseline", "candidate", "Δ", "95% CI", "p", "test", "rule"), rows))
    if fails:
        out += ["", "**Failures**", ""] + [f"- `{c.task}/{c.metric}`: {c.reason}" for c in fails]
    unmet = [c for c in v.checks if c.promotion == Promotion.NOT_MET]
    if unmet:
        out += ["", "**Promotion not reached**", ""] + [f"- `{c.task}/{c.metric}`: {c.reason}" for c in unmet]
    shown = flip_rows(v.comparison, flips, width=16)
    if shown:
        out += ["", "<details><summary>Flipped items (main metric, baseline → candidate)</summary>", "",
                md_table(("task", "item", "question", "target", "baseline", "candidate", "score"), shown),
                "", "</details>"]
    out += ["", "_Δ = candidate − baseline over the items both scored; 95% paired bootstrap interval; "
                "McNemar's exact test for 0/1 metrics, else the paired permutation test._"]
    return "\n".join(out) + "\n"
