"""``aimed-eval export-lm-eval``: write task configs that lm-evaluation-harness runs."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export-lm-eval", help="write lm-evaluation-harness task configs and data")
    p.set_defaults(func=lambda ns: 0)
