"""``aimed-eval gate --candidate RUN --baseline RUN [--policy gates.yaml]``.

Prints a Markdown summary fit for a pull-request comment, writes a JSON verdict, and
exits 0 (pass), 1 (a regression: each failing task/metric named) or 2 (bad input).
Several ``--candidate`` folders: each is judged, the best passing one is named (the
policy's ``rank_by``), and the exit code is 0 when at least one passes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import flag_types


def add_parser(sub) -> None:
    p = sub.add_parser("gate", help="pass/fail a candidate run against a baseline run (exit 1 on a regression)")
    p.add_argument("--candidate", type=Path, action="append", required=True,
                   help="candidate run folder (repeat to choose the best of several)")
    p.add_argument("--baseline", type=Path, required=True, help="baseline run folder")
    p.add_argument("--policy", type=Path, default=None,
                   help="gates.yaml (default: fail on any significant drop, p < 0.05)")
    p.add_argument("--json", type=Path, default=None, help="write the verdict as JSON here")
    p.add_argument("--summary", type=Path, default=None, help="write the Markdown summary here too")
    p.add_argument("--flips", type=flag_types.non_negative_int, default=5, metavar="N", help="flipped items shown per task (default 5)")
    p.set_defaults(func=gate_cmd)


def _check_out(path: Path | None, flag: str) -> None:
    from ..errors import UserError

    if path is not None and not path.parent.is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist; create it or choose another file")


def gate_cmd(ns: argparse.Namespace) -> int:
    from ..gate import choose_best, gate
    from ..results import atomic_write_text

    _check_out(ns.json, "--json")
    _check_out(ns.summary, "--summary")
    if len(ns.candidate) == 1:
        verdict = gate(ns.candidate[0], ns.baseline, ns.policy)
        verdicts, payload, best = [verdict], verdict.to_dict(), verdict if verdict.passed else None
    else:
        sel = choose_best(ns.candidate, ns.baseline, ns.policy)
        verdicts, payload, best = sel.verdicts, sel.to_dict(), sel.best
    text = "\n".join(v.markdown(ns.flips) for v in verdicts)
    if len(verdicts) > 1:
        text += ("\n**Best candidate** (by " + payload["rank_by"] + "): " +
                 (f"`{best.candidate['run_dir']}`" if best else "none passed") + "\n")
    # Everything is computed before anything is written: bad input leaves no file behind.
    if ns.json is not None:
        atomic_write_text(ns.json, json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    if ns.summary is not None:
        atomic_write_text(ns.summary, text)
    sys.stdout.write(text)
    if best is None:
        failing = sorted({f"{c.task}/{c.metric}" for v in verdicts for c in v.failures})
        print(f"aimed-eval: gate failed: {', '.join(failing) or 'no candidate passed'}", file=sys.stderr)
        return 1
    return 0
