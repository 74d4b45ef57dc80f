"""``aimed-eval chat``: a terminal chat with a checkpoint (the original ``cli_demo.py``).

Replies stream as they are generated; the conversation is kept as history (trimmed from
the oldest turn when ``--max_history`` is reached). Type ``clear`` to start over and
``exit`` (or ``quit``, or Ctrl-D) to leave.
"""

from __future__ import annotations

import argparse

from .. import flag_types
from ..help_text import user_help
from .model_flags import add_model_flags, model_args

CLEAR = ("clear", "/clear")
QUIT = ("exit", "quit", "/exit", "/quit")


def add_generation_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--max_new_tokens", type=flag_types.positive_int, default=512, help="longest reply, in tokens (default: 512)")
    g.add_argument("--temperature", type=float, default=0.7, help="0 for greedy decoding (default: 0.7)")
    g.add_argument("--top_p", type=float, default=0.9, help="nucleus sampling (default: 0.9)")
    g.add_argument("--repetition_penalty", type=float, default=1.0, help="default: 1.0 (none)")
    g.add_argument("--seed", type=int, default=None, help="seed sampling, for repeatable replies")
    g.add_argument("--system_prompt", default=None, help="replace the template's system prompt")


def generation_config(ns: argparse.Namespace):
    from ..errors import UserError
    from ..inference import GenerationConfig

    if ns.max_new_tokens < 1:
        raise UserError("--max_new_tokens: give at least 1")
    if ns.temperature < 0 or not 0 < ns.top_p <= 1:
        raise UserError("--temperature must be >= 0 and --top_p in (0, 1]")
    return GenerationConfig(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_p=ns.top_p,
                            repetition_penalty=ns.repetition_penalty, seed=ns.seed)


def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="chat with a checkpoint in the terminal",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p, template_default="vicuna")
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
