"""Render a ``Comparison`` as a terminal table or as Markdown (``compare`` and ``gate``).

Chinese characters take two terminal columns, so the plain-text table pads by display
width, not by ``len``.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Optional, Sequence

from .compare import Comparison

TESTS = "p: McNemar's exact test for 0/1 metrics, else the paired permutation (sign-flip) test"


def num(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def signed(x: Optional[float], digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}"


def pval(p: Optional[float]) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def interval(lo: Optional[float], hi: Optional[float]) -> str:
    return f"[{signed(lo)}, {signed(hi)}]"


def clip(text: str, width: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(_width(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    pad = lambda cell, w: str(cell) + " " * (w - _width(str(cell)))  # noqa: E731
    lines = ["  ".join(pad(h, w) for h, w in zip(head, widths)).rstrip()]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(pad(c, w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def metric_rows(c: Comparison, mark: str = "*") -> list[list[str]]:
    return [[r.task, r.metric, num(r.a), num(r.b), signed(r.delta), interval(r.ci_low, r.ci_high),
             pval(r.p_value) + (mark if r.significant else ""), r.test, str(r.n)] for r in c.metrics]


METRIC_HEAD = ("task", "metric", "A", "B", "delta", "95% CI", "p", "test", "n")


def category_rows(c: Comparison) -> list[list[str]]:
    return [[r.task, r.column, r.category, r.metric, num(r.a), num(r.b), signed(r.delta), str(r.n_a)]
            for r in c.categories if c.main_metrics.get(r.task) == r.metric]


CATEGORY_HEAD = ("task", "column", "category", "metric", "A", "B", "delta", "n")


def flip_rows(c: Comparison, per_task: int, width: int = 20) -> list[list[str]]:
    """The first ``per_task`` flipped items of each task; target and outputs clipped to ``width``."""
    rows, seen = [], {}
    for f in c.flips:
        seen[f.task] = seen.get(f.task, 0) + 1
        if seen[f.task] <= per_task:
            rows.append([f.task, f.id, clip(f.question, 30), clip(f.target, width), clip(f.a_output, width),
                         clip(f.b_output, width), f"{num(f.a_score, 2)} → {num(f.b_score, 2)}"])
    return rows


FLIP_HEAD = ("task", "item", "question", "target", "A output", "B output", "score A → B")


def pairwise_rows(c: Comparison) -> list[list[str]]:
    return [[r.task, str(r.n), f"{r.b_wins}/{r.ties}/{r.a_wins}", num(r.win_rate, 3),
             f"[{num(r.ci_low, 3)}, {num(r.ci_high, 3)}]", f"{num(r.consistency, 3)} ({r.inconsistent} inconsistent)",
             num(r.first_position, 3), str(r.invalid)] for r in c.pairwise]


PAIRWISE_HEAD = ("task", "n", "B wins/ties/A wins", "B win rate", "95% CI", "consistency", "first position",
                 "invalid")


def _flip_counts(c: Comparison) -> str:
    counts: dict[str, int] = {}
    for f in c.flips:
        counts[f.task] = counts.get(f.task, 0) + 1
    return ", ".join(f"{t}: {n}" for t, n in counts.items()) or "none"


def _render(c: Comparison, flips: int, markdown: bool) -> str:
    """The comparison as terminal text or as Markdown: the same sections, each in its own markup."""
    a, b = c.run_a, c.run_b
    table = md_table if markdown else text_table
    code = (lambda x: f"`{x}`") if markdown else str

    def heading(text: str) -> list[str]:
        return ["", f"### {text}", ""] if markdown else ["", text]

    def run_line(name: str, r: dict) -> str:
        who = f"**{name}**" if markdown else name
        sep = " " if markdown else "  "
        return f"{'- ' if markdown else ''}{who}: {code(r['run_dir'])}{sep}({r['model']}, fingerprint {code(r['fingerprint'][:12] or '—')})"

    out = (["## Comparison", ""] if markdown else []) + [
        run_line("A", a), run_line("B", b),
        f"{'- ' if markdown else ''}delta = B - A over the items both runs scored; 95% paired bootstrap interval "
        f"({c.n_boot} resamples, seed {c.seed}); {TESTS}; * p < {c.alpha}", "",
        table(METRIC_HEAD, metric_rows(c))]
    cats = category_rows(c)
    if cats:
        out += heading("Per category (main metric)" if markdown else "Per category (each task's main metric):")
        out.append(table(CATEGORY_HEAD, cats))
    out += ["", f"{'### ' if markdown else ''}Flipped items (main metric): {_flip_counts(c)}"]
    shown = flip_rows(c, flips)
    if shown:
        out += ([""] if markdown else []) + [table(FLIP_HEAD, shown)]
    if c.pairwise:
        out += heading("Judged pairwise (B against A, each pair in both orders)" if markdown else
                       "Judged pairwise (B against A, each pair asked in both orders; an inconsistent pair is a tie):")
        out.append(table(PAIRWISE_HEAD, pairwise_rows(c)))
    if c.notes:
        out += ([""] + [f"> note: {n}" for n in c.notes]) if markdown else [f"note: {n}" for n in c.notes]
    return "\n".join(out) + "\n"


def render_text(c: Comparison, flips: int = 10) -> str:
    return _render(c, flips, markdown=False)


def render_markdown(c: Comparison, flips: int = 10) -> str:
    return _render(c, flips, markdown=True)
