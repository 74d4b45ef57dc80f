"""``aimed-eval train``: run one training stage; every checkpoint it saves is scored.

    aimed-eval train --stage sft --config sft.yaml --max_steps 200 --eval_tasks demo

Config keys: defaults < ``--config`` YAML < ``--key value`` flags (any field of the
stage's config; ``--key=value`` works too). An unknown key is an error that names it.

Reached through the ``aimed.commands`` entry point, so the harness never imports this
package by name; imported at every CLI start, so torch and trl load only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aimed.harness.errors import UserError
from aimed.harness.help_text import user_help


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a stage (pt, sft, rm, ppo, dpo, ...); every checkpoint scored",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter,
                       allow_abbrev=False)
    p.add_argument("--stage", required=True, help="the stage: pt, sft, rm, ppo, dpo, or another registered one")
    p.add_argument("--config", type=Path, default=None, help="the stage's YAML config")
    p.add_argument("--list_keys", action="store_true", help="print the stage's config keys and defaults, then exit")
    p.set_defaults(func=run, overrides=[])
    # Free `--key value` flags: argparse cannot declare them before the stage is known, so
    # this parser hands what it does not know to `run` instead of failing on it.
    p.__class__ = type("TrainParser", (type(p),), {"parse_known_args": _keep_unknown})


def _keep_unknown(self, args=None, namespace=None):
    ns, rest = super(type(self), self).parse_known_args(args, namespace)
    ns.overrides = list(getattr(ns, "overrides", [])) + rest
    return ns, []


def parse_overrides(items: list[str]) -> dict:
    """``["--max_steps", "5", "--lora_r=4"]`` -> ``{"max_steps": "5", "lora_r": "4"}``."""
    out: dict = {}
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--") or len(item) == 2:
            raise UserError(f"train: {item!r}: give config keys as --key value")
        key, eq, value = item[2:].partition("=")
        if not eq:
            if i + 1 >= len(items) or items[i + 1].startswith("--"):
                raise UserError(f"train: --{key}: give a value")
            value = items[i + 1]
            i += 1
        out[key] = value
        i += 1
    return out


def run(ns: argparse.Namespace) -> int:
    import dataclasses

    from .stages import load_stage_config, stage_module, train_stage

    if ns.list_keys:
        cls = stage_module(ns.stage).Config
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            print(f"--{f.name} (default: {default!r})")
        return 0
    config = load_stage_config(ns.stage, ns.config, parse_overrides(ns.overrides))
    result = train_stage(ns.stage, config)
    from .launch import is_main

    if not is_main():  # under torchrun / accelerate launch the main process reports
        return 0
    print(f"\nstage {result.stage} done: {len(result.checkpoints)} checkpoint(s)")
    for key, value in result.train_metrics.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    for ckpt in result.checkpoints:
        run_dir = result.eval_runs.get(ckpt)
        scores = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in result.scores.get(ckpt, {}).items())
        print(f"  {ckpt}" + (f"  {scores}" if scores else "") + (f"  (run {run_dir})" if run_dir else ""))
    print(f"final checkpoint: {result.final}")
    return 0
