"""Numbers, dates and table rows shared by the HTML and Markdown renderers, so both
print the same figures."""

from __future__ import annotations

from typing import Any, Optional

from aimed.harness.compare_format import pval
from aimed.harness.stats import score_interval95 as interval95
from aimed.leaderboards.query import date_text
from aimed.leaderboards.training_labels import training_figures  # noqa: F401 (the report's pipeline rows)

FLIPS_SHOWN = 50          # flipped items listed (the count says how many there are)
TEXT_CUT = 240            # characters of a question or an output shown in a table


def num(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:+.{digits}f}"


INTERVAL_NOTE = ("95% intervals: Wilson's score interval for accuracies, value ± 1.96 standard errors for the "
                 "other scores, kept within [0, 1]")


def score_with_ci(cell, n: Optional[int] = None) -> str:
    """``0.5123 [0.4110, 0.6125]``: the value and its 95% interval (:func:`interval95`)."""
    if not cell or cell[0] is None:
        return "–"
    value, se = cell[0], cell[1] if len(cell) > 1 else None
    metric = cell[2] if len(cell) > 2 else ""
    ci = interval95(value, se, n, metric)
    return num(value) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")


def interval(lo: Optional[float], hi: Optional[float]) -> str:
    return "–" if lo is None or hi is None else f"[{lo:+.4f}, {hi:+.4f}]"


def pvalue(p: Optional[float]) -> str:
    """The one p-value format of every command and page: ``0.8730``, ``<0.0001``."""
    return "–" if p is None else pval(p)


def date(value: Any) -> str:
    """The leaderboards' one date format (``query.DATE_FORMAT``), as the CLI table prints it."""
    return date_text(value)


def cut(text: Any, limit: int = TEXT_CUT) -> str:
    text = " ".join(str(text if text is not None else "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline_name(board) -> str:
    """The last column: the suite's score where the board has a suite, else the average."""
    return f"{board.headline} (suite score)" if getattr(board, "headline", None) else "average"


def score_columns(board) -> list[str]:
    """The task columns before the headline one (the suite is the headline, not repeated)."""
    return [t for t in board.tasks if t != getattr(board, "headline", None)]


def leaderboard_header(board, metrics: dict[str, str]) -> list[str]:
    return (["best", "base model", "stage", "step", "checkpoint", "run", "date"]
            + [f"{t} ({metrics.get(t, '?')})" for t in score_columns(board)] + [headline_name(board)])


def leaderboard_cells(row, board) -> list[str]:
    return (["★" if row.best_in_stage else "", row.base_model, row.stage,
             "–" if row.step is None else str(row.step), str(row.checkpoint), row.run_id, date(row.date)]
            + [score_with_ci(row.scores.get(t), row.counts.get(t)) for t in score_columns(board)]
            + [num(row.average)])


def verdict(metric: dict) -> str:
    """``better`` / ``worse`` / ``no significant change`` for a comparison metric row."""
    if not metric.get("significant") or metric.get("delta") is None:
        return "no significant change"
    better = (metric["delta"] > 0) == bool(metric.get("higher_is_better", True))
    return "better" if better else "worse"


def comparison_metric_header() -> list[str]:
    return ["task", "metric", "A", "B", "Δ (B − A)", "95% CI", "p", "test", "n", "verdict"]


def comparison_metric_cells(m: dict) -> list[str]:
    return [m["task"], m["metric"], num(m.get("a")), num(m.get("b")), signed(m.get("delta")),
            interval(m.get("ci_low"), m.get("ci_high")), pvalue(m.get("p_value")), str(m.get("test") or "–"),
            str(m.get("n") if m.get("n") is not None else "–"), verdict(m)]


def comparison_category_header() -> list[str]:
    return ["task", "column", "category", "metric", "A", "B", "Δ (B − A)", "n A", "n B"]


def comparison_category_cells(c: dict) -> list[str]:
    return [c["task"], c["column"], c["category"], c["metric"], num(c.get("a")), num(c.get("b")),
            signed(c.get("delta")), str(c.get("n_a", "–")), str(c.get("n_b", "–"))]


def flip_header() -> list[str]:
    return ["task", "item", "question", "target", "A output", "B output", "A score", "B score"]


def flip_cells(f: dict) -> list[str]:
    return [f["task"], str(f.get("id", f.get("doc_id"))), cut(f.get("question")), cut(f.get("target"), 80),
            cut(f.get("a_output")), cut(f.get("b_output")), num(f.get("a_score"), 2), num(f.get("b_score"), 2)]


def flip_summary(flips: list[dict]) -> str:
    """How many items flipped, and which way (for 0/1 metrics: right in B only, right in
    A only; for continuous ones the items that changed most, better in B or in A)."""
    better_b = sum(1 for f in flips if (f.get("b_score") or 0) > (f.get("a_score") or 0))
    shown = f"; the first {FLIPS_SHOWN} listed" if len(flips) > FLIPS_SHOWN else ""
    return (f"{len(flips)} item{'' if len(flips) == 1 else 's'} flipped on their task's main metric: "
            f"{better_b} better in B, {len(flips) - better_b} better in A{shown}.")


