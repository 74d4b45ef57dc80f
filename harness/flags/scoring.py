"""How items are put to the model: the flags ``run`` and ``export-lm-eval`` share, so an
exported task is built from the same choices as a run of it."""

from __future__ import annotations

import argparse

from ..taskspec import MODES


def check_scoring_flags(ns: argparse.Namespace) -> None:
    """The numbers ``run`` and ``sweep`` take, checked alike."""
    from ..errors import UserError

    if ns.batch_size != "auto" and not (ns.batch_size.isdigit() and int(ns.batch_size) > 0):
        raise UserError(f"--batch_size {ns.batch_size}: give a positive number or auto")
    if ns.limit is not None and ns.limit < 1:
        raise UserError("--limit: give a positive number of items")
    if ns.num_fewshot is not None and ns.num_fewshot < 0:
        raise UserError("--num_fewshot: give 0 or more")


def add_prompt_flags(p: argparse.ArgumentParser, verb: str = "score") -> None:
    """``verb``: what the command does with the first N items (score, export)."""
    p.add_argument("--mode", choices=MODES, default=None,
                   help=f"multiple-choice scoring: {' | '.join(MODES)} (default: per task)")
    p.add_argument("--num_fewshot", type=int, default=None, help="few-shot examples in each prompt (default: per task)")
    p.add_argument("--limit", type=int, default=None, help=f"{verb} only the first N items of each task")
    p.add_argument("--seed", type=int, default=1234, help="seed for few-shot sampling")
    p.add_argument("--circular", action="store_true", default=None,
                   help=f"CircularEval: {verb} every multiple-choice item under each cyclic rotation of its "
                        "options as well (default: per task, a spec's `circular: true`)")
