"""Every command's ``--help`` speaks to users: no reST markup, nothing about how the code
is wired (entry points, imports); ``score``'s run_dir is described; ``chat --help`` is
about chat only."""

import argparse
import re

from aimed.harness.cli import build_parser
from aimed.harness.help_text import user_help


def command_helps() -> dict[str, str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: p.format_help() for name, p in sub.choices.items()}


def test_no_command_help_has_markup_or_internals():
    helps = command_helps()
    assert {"run", "score", "chat", "demo", "pipeline", "train", "leaderboard", "report", "dashboard"} <= set(helps)
    for name, text in helps.items():
        for bad in ("``", ":mod:", ":func:", ":class:", "entry point", "imports nothing", "Registered through",
                    "this module"):
            assert bad not in text, (name, bad)


def test_score_describes_run_dir_and_chat_is_about_chat():
    helps = command_helps()
    assert re.search(r"run_dir +a run folder `aimed-eval run` wrote", helps["score"])
    assert "for `run`" not in helps["chat"] and "a,b,c" not in helps["chat"] and "scored" not in helps["chat"]
    assert "a,b,c scores each adapter on its own" in helps["run"]


def test_user_help_keeps_the_user_text():
    doc = ("``aimed-eval x``: does :func:`things`.\n\nRun ``x --y`` again.\n\n"
           "Registered through the ``aimed.commands`` entry point; this module imports nothing heavy.\n")
    assert user_help(doc) == "`aimed-eval x`: does `things`.\n\nRun `x --y` again."
