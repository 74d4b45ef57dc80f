"""The generation flags of ``chat``, ``serve`` and the web demos."""

from __future__ import annotations

import argparse

from ..errors import UserError
from .. import flag_types


def add_generation_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--max_new_tokens", type=flag_types.positive_int, default=512, help="longest reply, in tokens (default: 512)")
    g.add_argument("--temperature", type=float, default=0.7, help="0 for greedy decoding (default: 0.7)")
    g.add_argument("--top_p", type=float, default=0.9, help="nucleus sampling (default: 0.9)")
    g.add_argument("--repetition_penalty", type=float, default=1.0, help="default: 1.0 (none)")
    g.add_argument("--seed", type=int, default=None, help="seed sampling, for repeatable replies")
    g.add_argument("--system_prompt", default=None, help="replace the template's system prompt")


def generation_config(ns: argparse.Namespace):
    from ..inference import GenerationConfig

    if ns.max_new_tokens < 1:
        raise UserError("--max_new_tokens: give at least 1")
    if ns.temperature < 0 or not 0 < ns.top_p <= 1:
        raise UserError("--temperature must be >= 0 and --top_p in (0, 1]")
    return GenerationConfig(max_new_tokens=ns.max_new_tokens, temperature=ns.temperature, top_p=ns.top_p,
                            repetition_penalty=ns.repetition_penalty, seed=ns.seed)
