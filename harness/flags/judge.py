"""The judge flags of ``run``, ``score`` and ``compare`` (see ``judge/config.py``)."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from ..errors import UserError


def add_judge_flags(p: argparse.ArgumentParser, what: str = "each task's outputs with its rubric",
                    with_cache: bool = False) -> None:
    """``with_cache``: also the flags of the cache the judgements live in, for commands that
    have none of their own (``score``, ``compare``; ``run`` has its own)."""
    g = p.add_argument_group("judge (LLM-as-judge; see docs/judge.md)")
    g.add_argument("--judge", default=None, metavar="URL|FOLDER|FILE.yaml",
                   help=f"a model that scores {what}: an OpenAI-compatible endpoint (http://127.0.0.1:8000/v1), "
                        "a checkpoint loaded here, or a judge config .yaml (key from the variable it names)")
    g.add_argument("--judge_model", default=None, help="the model id at the --judge endpoint (default: its only one)")
    g.add_argument("--judge_rubric", default=None, metavar="NAME|FILE.yaml",
                   help="the rubric for every task (default: each task spec's judge: rubric)")
    g.add_argument("--judge_concurrency", type=int, default=None, metavar="N",
                   help="judge requests at once to an endpoint (default: the config's, else 4)")
    if with_cache:
        g.add_argument("--cache_dir", type=Path, default=None, help="response cache folder the judgements live "
                       "in (default: $AIMED_CACHE or ~/.cache/aimed-eval)")
        g.add_argument("--no_cache", action="store_true", help="ask the judge again for every item")
        g.add_argument("--quiet", action="store_true", help="no progress bars")


def judge_config(ns: argparse.Namespace):
    """The judge the flags name, or None; the judge-only flags without --judge are refused."""
    from ..judge.config import judge_from_flag

    given = [f"--{k}" for k in ("judge_model", "judge_rubric", "judge_concurrency") if getattr(ns, k, None) is not None]
    value: Optional[str] = getattr(ns, "judge", None)
    if value is None:
        if given:
            raise UserError(f"{'/'.join(given)}: apply to --judge; name the judge or drop them")
        return None
    return judge_from_flag(value, ns.judge_model, ns.judge_rubric, ns.judge_concurrency)


def open_judge(config, ns: argparse.Namespace, stack: ExitStack):
    """The judge ``config`` names, on the response cache its judgements live in (``--cache_dir``,
    ``--no_cache``), closed with ``stack``; None without a config. (``run`` builds its judge
    in ``evaluate``, on the run's own cache.)"""
    if config is None:
        return None
    from ..cache import NoCache, ResponseCache, default_cache_dir
    from ..evaluate import folder_hasher
    from ..judge.client import build_judge
    from ..judge.session import Judge

    cache = NoCache() if ns.no_cache else ResponseCache(ns.cache_dir or default_cache_dir())
    stack.callback(cache.close)
    return Judge(config, build_judge(config, folder_hasher(cache)), cache, progress=not ns.quiet)
