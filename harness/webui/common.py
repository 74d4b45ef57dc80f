"""What both web demos share: their flags, the checks made before a server starts, the
model they load and the conversation as (question, answer) turns.

The flags are the terminal chat's (``aimed-eval chat``): the original tools' model flags
with the vicuna template by default, the generation flags and ``--max_history``. The
streamlit app gets them back as a command line (``streamlit run app.py -- FLAGS``), so
``app_argv`` writes a namespace out and ``parse_app_args`` reads it back.
"""

from __future__ import annotations

import argparse
from typing import Iterable

from .. import flag_types
from ..flags.generation import add_generation_flags, generation_config
from ..flags.model import add_model_flags, model_args
from ..errors import UserError

TITLE = "AiMed chat"
INSTALL = "pip install 'aimed-eval[webui]'"


def add_app_flags(p: argparse.ArgumentParser) -> None:
    add_model_flags(p, template_default="vicuna")
    add_generation_flags(p)
    p.add_argument("--max_history", type=flag_types.non_negative_int, default=10, help="turns kept as context (default: 10)")


def app_argv(ns: argparse.Namespace) -> list[str]:
    """The app flags of ``ns`` as a command line, leaving out those at their defaults."""
    probe = argparse.ArgumentParser(add_help=False)
    add_app_flags(probe)
    argv: list[str] = []
    for action in probe._actions:
        value = getattr(ns, action.dest, None)
        if value is None or value == action.default:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            argv.append(action.option_strings[0])
        else:
            argv += [action.option_strings[0], str(value)]
    return argv


def parse_app_args(argv: list[str]) -> argparse.Namespace:
    """The streamlit app's flags; bad ones raise UserError (argparse would exit the server)."""
    class Parser(argparse.ArgumentParser):
        def error(self, message: str):
            raise UserError(f"{message} (see aimed-eval webui --help)")

    p = Parser(prog="aimed-eval webui")
    add_app_flags(p)
    return p.parse_args(argv)


def preflight(ns: argparse.Namespace) -> None:
    """Every check that is cheap enough to make before a server starts, so that a wrong
    folder or flag is one line and exit 2 in the terminal, not an error page in a browser.
    Loading the weights themselves is left to the app (the streamlit app loads them in its
    own process)."""
    from ..models.loading import _check_checkpoint, local_folder

    generation_config(ns)
    if ns.max_history < 0:
        raise UserError("--max_history: give 0 or more turns")
    args = model_args(ns)
    if len(args.lora_model) > 1:
        raise UserError("--lora_model: give one adapter folder")
    if folder := local_folder(args.model, "--model"):  # None: a hub id, fetched by the app
        _check_checkpoint(folder, "--model", "config.json")
    for name in args.lora_model:
        if folder := local_folder(name, "--lora_model"):
            _check_checkpoint(folder, "--lora_model", "adapter_config.json")
    if args.tokenizer_path:
        local_folder(args.tokenizer_path, "--tokenizer_path")


def load_chat_model(ns: argparse.Namespace):
    from ..inference import ChatModel

    return ChatModel.from_args(model_args(ns), system=ns.system_prompt, generation=generation_config(ns))


def text_of(content) -> str:
    """A message's text: a string (streamlit), or gradio 6's list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return content.get("text", "") if content.get("type", "text") == "text" else ""
    return "".join(text_of(part) for part in content or ())


def turns(messages: Iterable[dict], max_history: int) -> list[tuple[str, str]]:
    """role/content messages as the (question, answer) history ChatModel takes, the
    ``max_history`` most recent turns (an unanswered question is dropped)."""
    history: list[tuple[str, str]] = []
    question = None
    for m in messages:
        if m["role"] == "user":
            question = text_of(m["content"])
        elif m["role"] == "assistant" and question is not None:
            history.append((question, text_of(m["content"]).strip()))
            question = None
    return history[-max_history:] if max_history else []
