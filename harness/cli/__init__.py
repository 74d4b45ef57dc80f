"""The ``aimed-eval`` command line: one module a command, registered here.

A ``UserError`` anywhere becomes one line on stderr and exit code 2; a gate failure
(later) is exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import UserError
from ..taskregistry import reset_warnings, skip_bad_rows
from . import chat_cmd, compare_cmd, contamination_cmd, export_cmd, gate_cmd, import_cmd, judge_agreement_cmd, merge_cmd, run_cmd, score_cmd, serve_cmd, sweep_cmd, tasks_cmd, webui_cmd

COMMANDS = (run_cmd, tasks_cmd, score_cmd, export_cmd, chat_cmd, merge_cmd, import_cmd, serve_cmd, webui_cmd, compare_cmd, gate_cmd,
            contamination_cmd, judge_agreement_cmd, sweep_cmd)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other user mistake
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aimed-eval", description="Score Chinese medical LLM checkpoints.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"aimed-eval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    for module in plugin_commands():
        module.add_parser(sub)
    return parser


def plugin_commands() -> list:
    """Command modules other packages offer (``aimed.commands`` entry points): the
    leaderboard, report and dashboard commands live with the code they run, and the
    harness reaches them without importing those packages by name."""
    import importlib
    from importlib.metadata import entry_points

    return [importlib.import_module(ep.value)
            for ep in sorted(entry_points(group="aimed.commands"), key=lambda e: e.name)]


def main(argv: Optional[list[str]] = None) -> int:
    skip_bad_rows(False)  # per invocation (in-process callers run several)
    reset_warnings()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (2) and --help/--version (0)
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        _close_progress_bars()
        print(f"aimed-eval: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _close_progress_bars()
        print("aimed-eval: interrupted", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """A bar left open by the failed step (a trainer's, a task's) is cleared from its line
    first, so the error stands alone on the line instead of glued after the bar."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.leave = False
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
