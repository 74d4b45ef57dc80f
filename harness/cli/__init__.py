"""The ``aimed-eval`` command line: one module a command, registered here.

A ``UserError`` anywhere becomes one line on stderr and exit code 2; a gate failure
(later) is exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import UserError

# command -> the module of this package that defines it; the other packages' commands come
# from ``aimed.commands`` entry points, named as their commands
COMMANDS = {"run": "run_cmd", "tasks": "tasks_cmd", "validate": "tasks_cmd", "score": "score_cmd",
            "export-lm-eval": "export_cmd", "chat": "chat_cmd", "merge": "merge_cmd", "import": "import_cmd",
            "serve": "serve_cmd", "webui": "webui_cmd", "compare": "compare_cmd", "gate": "gate_cmd",
            "contamination": "contamination_cmd", "judge-agreement": "judge_agreement_cmd", "sweep": "sweep_cmd"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as for every other user mistake
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The whole command line, or with ``only`` the one command named (start-up pays for
    importing that command's module alone: ``aimed-eval leaderboard`` never loads the task
    schema or the scoring engine)."""
    parser = _Parser(prog="aimed-eval", description="Score Chinese medical LLM checkpoints.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"aimed-eval {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in command_modules(only):
        module.add_parser(sub)
    return parser


def command_modules(only: Optional[str] = None) -> list:
    """The modules defining the commands (each once, in the order of ``--help``), or the one
    defining ``only``; none when ``only`` names no command (the caller builds them all)."""
    import importlib
    from importlib.metadata import entry_points

    ours = [m for m in dict.fromkeys(COMMANDS.values()) if only is None or COMMANDS.get(only) == m]
    # Command modules other packages offer: the leaderboard, report and dashboard commands live
    # with the code they run, and the harness reaches them without importing those packages by name.
    theirs = [ep.value for ep in sorted(entry_points(group="aimed.commands"), key=lambda e: e.name)
              if only is None or ep.name == only]
    return [importlib.import_module(f"{__name__}.{m}") for m in ours] + [importlib.import_module(v) for v in theirs]


def _entry_point_names() -> set[str]:
    from importlib.metadata import entry_points

    return {ep.name for ep in entry_points(group="aimed.commands")}


def _named_command(argv: list[str]) -> Optional[str]:
    """The command ``argv`` starts with, or None (--help, --version: the whole parser)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    registry = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.taskregistry")
    if registry is not None:  # per invocation (in-process callers run several); a fresh one is clean
        registry.skip_bad_rows(False)
        registry.reset_warnings()
    named = _named_command(argv)
    # a name that is no command gets the whole parser, whose error lists the known ones
    parser = build_parser(named if named in COMMANDS or named in _entry_point_names() else None)
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
