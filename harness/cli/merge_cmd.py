"""``aimed-eval merge``: fold a LoRA adapter into its base and save a full checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..help_text import user_help
from ..flags.model import add_model_flags, model_args


def add_parser(sub) -> None:
    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model (safetensors + manifest)",
                       description=user_help(__doc__))
    add_model_flags(p)
    p.add_argument("--out", "--output_dir", dest="out", type=Path, required=True,
                   help="folder for the merged checkpoint")
    p.add_argument("--save_dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="dtype of the saved weights (default: the dtype the model was loaded in)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from ..merge import merge_adapter

    out = merge_adapter(model_args(ns), ns.out, overwrite=ns.overwrite, dtype=ns.save_dtype)
    print(f"merged {ns.lora_model} into {ns.model} -> {out}")
    return 0
