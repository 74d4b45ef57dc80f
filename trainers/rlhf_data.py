"""Prompts for the RL stages (ppo, rloo, grpo): the questions of SFT and preference files,
rendered with the chat template (``template_name``) the policy was taught with.

A file is read by the readers of the other stages, told apart by its first record:
preference pairs (``response_chosen`` or ``chosen``: the prompt the pair answers), SFT
data (``instruction``/``input``, ShareGPT ``conversations``: the last human turn, after
the earlier rounds), or plain ``prompt`` records (the text as it is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError

from .data_files import field_text, read_records
from .preference_data import read_pairs
from .sft_data import read_dialogues, render


def file_prompts(path: Path, template_name: str, tokenizer=None, limit: Optional[int] = None) -> list[str]:
    first = next(read_records(path, 1), None)
    if first is None:
        raise UserError(f"{path}: no examples (empty file); give at least one record")
    rec = first[1]
    if "chosen" in rec or "response_chosen" in rec:
        return [p.prompt(template_name, tokenizer) for p in read_pairs(path, limit)]
    if "prompt" in rec and "instruction" not in rec and "conversations" not in rec:
        return [field_text(r, "prompt", where, "prompt records need a text 'prompt'")
                for where, r in read_records(path, limit)]
    prompts = []
    for _, turns, system in read_dialogues(path, limit):
        *history, (question, _) = turns
        prompts.append(render(template_name, [*history, (question, None)], system, tokenizer))
    return prompts


def read_prompts(files: list[Path], template_name: str, tokenizer=None,
                 max_samples: Optional[int] = None) -> tuple[list[str], dict[Path, int]]:
    """Rendered prompts of ``files`` (at most ``max_samples`` a file), and how many each gave."""
    prompts: list[str] = []
    counts: dict[Path, int] = {}
    for path in files:
        got = file_prompts(path, template_name, tokenizer, max_samples)
        prompts += got
        counts[path] = len(got)
    return prompts, counts
