"""``aimed-eval chat``: a terminal chat with a checkpoint (the original ``cli_demo.py``).

Replies stream as they are generated; the conversation is kept as history (trimmed from
the oldest turn when ``--max_history`` is reached). Type ``clear`` to start over and
``exit`` (or ``quit``, or Ctrl-D) to leave.
"""

from __future__ import annotations

import argparse

from .. import flag_types
from ..flags.generation import add_generation_flags, generation_config
from ..flags.model import add_model_flags, model_args
from ..help_text import user_help
from ..templates import CHAT_TEMPLATE

CLEAR = ("clear", "/clear")
QUIT = ("exit", "quit", "/exit", "/quit")


def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="chat with a checkpoint in the terminal",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p, template_default=CHAT_TEMPLATE)
    add_generation_flags(p)
    p.add_argument("--max_history", type=flag_types.non_negative_int, default=10, help="turns kept as context (default: 10)")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from ..inference import ChatModel

    config = generation_config(ns)
    bot = ChatModel.from_args(model_args(ns), system=ns.system_prompt, generation=config)
    print(f"model: {ns.model}; template: {ns.template_name}. "
          "Type 'clear' to clear the history, 'exit' to quit.", flush=True)
    history: list[tuple[str, str]] = []
    while True:
        try:
            query = input("\nUser: ").strip()
        except EOFError:
            print()
            break
        if not query:
            continue
        if query.lower() in QUIT:
            break
        if query.lower() in CLEAR:
            history.clear()
            print("(history cleared)", flush=True)
            continue
        print("Assistant: ", end="", flush=True)
        reply = []
        for piece in bot.stream_chat(query, history):
            reply.append(piece)
            print(piece, end="", flush=True)
        print(flush=True)
        history.append((query, "".join(reply).strip()))
        del history[:-ns.max_history or None]
    print("bye", flush=True)
    return 0
