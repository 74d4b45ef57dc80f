"""A command's ``--help`` description, from its module's docstring, as users read it.

The docstring serves both readers: its paragraphs about the code (how the command is
registered, what it imports) are for developers and are left out, and reST markup
(````x````, ``:mod:`x```) becomes plain backticks, which read as "type this".
"""

from __future__ import annotations

import re

DEVELOPER_NOTES = ("entry point", "imports nothing", "Registered through", "this module")


def user_help(doc: str) -> str:
    paragraphs = [p for p in (doc or "").strip().split("\n\n") if not any(m in p for m in DEVELOPER_NOTES)]
    text = "\n\n".join(paragraphs)
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text).replace("\\\\\n", "\\\n")
