"""``aimed-eval export-lm-eval``: write task configs that lm-evaluation-harness runs.

Each task becomes an lm-eval 0.4.13 task YAML plus a JSONL of docs that carry the prompt
aimed-eval builds (few-shot examples and chat template included), so both tools put the
same text to the model; groups become group YAMLs. Single-answer items score alike in
both; on multi-answer items lm-eval's accuracy is more lenient (one gold option chosen
counts), where ours asks for the exact set. Each YAML says so in a comment.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ..help_text import user_help
from ..flags.scoring import add_prompt_flags
from ..templates import RAW_TEMPLATE, template_names


def add_parser(sub) -> None:
    p = sub.add_parser("export-lm-eval", help="write lm-evaluation-harness task configs and data",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", required=True, help="tasks, groups or spec files, comma-separated")
    p.add_argument("--out", type=Path, required=True, help="folder for the YAMLs and data (lm_eval --include_path)")
    add_prompt_flags(p, verb="export")
    p.add_argument("--template_name", default=RAW_TEMPLATE, choices=template_names(), metavar="NAME",
                   help=f"chat template baked into the prompts: {', '.join(template_names())} (default: {RAW_TEMPLATE})")
    p.add_argument("--tokenizer_path", "--model", dest="tokenizer_path", default=None,
                   help="tokenizer folder; needed only for --template_name tokenizer")
    p.add_argument("--trust_remote_code", action="store_true", help="allow the tokenizer's own Python code")
    p.add_argument("--prefix", default="aimed_",
                   help="prefix of the exported task and group names (default: aimed_; lm-eval ships "
                        "its own cmmlu_* and medqa tasks)")
    p.set_defaults(func=run)


def _tokenizer(ns: argparse.Namespace):
    if ns.tokenizer_path is None:
        return None
    from transformers import AutoTokenizer

    from ..models.loading import local_folder

    local_folder(ns.tokenizer_path, "--tokenizer_path")
    try:
        return AutoTokenizer.from_pretrained(ns.tokenizer_path, trust_remote_code=ns.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"{ns.tokenizer_path}: no usable tokenizer ({str(exc).splitlines()[0][:160]}); "
                        "give a folder with tokenizer files") from None


def run(ns: argparse.Namespace) -> int:
    if ns.limit is not None and ns.limit < 1:
        raise UserError("--limit: give a positive number of items")
    if ns.num_fewshot is not None and ns.num_fewshot < 0:
        raise UserError("--num_fewshot: give 0 or more")
    from ..export_lm_eval import export

    tokenizer = _tokenizer(ns) if ns.template_name == "tokenizer" else None
    result = export(ns.tasks, ns.out, mode=ns.mode, num_fewshot=ns.num_fewshot, limit=ns.limit,
                    seed=ns.seed, template_name=ns.template_name, tokenizer=tokenizer, prefix=ns.prefix, circular=ns.circular)
    for t in result.tasks:
        multi = f", {t.n_multi_answer} multi-answer (lm-eval's acc differs there)" if t.n_multi_answer else ""
        rotated = f" ({t.n_docs - t.n_rotated} items and {t.n_rotated} rotations of them)" if t.n_rotated else ""
        print(f"{t.name}: {t.n_docs} items{rotated}, {t.mode}, {t.num_fewshot}-shot baked in{multi} -> {t.yaml_path}")
    for g, path in result.groups.items():
        print(f"{g}: group -> {path}")
    print("run with:")
    print(f"  {result.command()}")
    return 0
