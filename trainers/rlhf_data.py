"""Prompts for the RL stages (ppo, rloo, grpo): the questions of the SFT and preference
files, rendered with a chat template of the harness, so the policy answers them as it was
taught to in SFT.

Each line of a file is one JSON object (a file that is one JSON array works too), in any
format the other stages read:

- ``question`` (preference pairs: ``question``/``response_chosen``/``response_rejected``);
- ``conversations`` (ShareGPT, ``from``: human/gpt): the prompt asks the last human turn,
  after the earlier rounds as history;
- ``instruction`` (+ ``input``): Alpaca-style instructions;
- ``prompt``: a plain prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError
from aimed.harness.templates import render_prompt

USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "bot")


def _records(path: Path):
    """(line number, JSON object) of a JSONL file or a JSON-array file."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        yield from ((i + 1, item) for i, item in enumerate(items))
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}:{n}: not valid JSON ({exc}); one JSON object a line") from None


def _question(record, where: str) -> tuple[str, list[tuple[str, str]]]:
    """(the question to ask, the earlier rounds as [(user, assistant), ...])."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: give a JSON object, not {type(record).__name__}")
    if isinstance(record.get("question"), str) and record["question"].strip():
        return record["question"], []
    if isinstance(record.get("conversations"), list):
        return _from_conversation(record["conversations"], where)
    if isinstance(record.get("instruction"), str) and record["instruction"].strip():
        extra = record.get("input") or ""
        return record["instruction"] + ("\n" + extra if extra.strip() else ""), []
    if isinstance(record.get("prompt"), str) and record["prompt"].strip():
        return record["prompt"], []
    raise UserError(f"{where}: no prompt field; give `question`, `conversations`, `instruction` or `prompt`")


def _from_conversation(turns: list, where: str) -> tuple[str, list[tuple[str, str]]]:
    users, history, pending = [], [], None
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise UserError(f"{where}: conversations[{k}] needs `from` and a text `value`")
        role = turn.get("from")
        if role in USER_ROLES:
            users.append(k)
            pending = turn["value"]
        elif role in ASSISTANT_ROLES and pending is not None:
            history.append((pending, turn["value"]))
            pending = None
    if not users:
        raise UserError(f"{where}: `conversations` has no human turn to ask")
    if pending is not None:  # ends with the user's turn (preference data): ask that one
        return pending, history
    last_user, _ = history.pop()  # ends with an answer (SFT data): ask its last question again
    return last_user, history


def read_prompts(files: list[Path], template_name: str, tokenizer=None,
                 max_samples: Optional[int] = None) -> tuple[list[str], dict[Path, int]]:
    """Rendered prompts of ``files`` (at most ``max_samples`` a file), and how many each gave."""
    prompts: list[str] = []
    counts: dict[Path, int] = {}
    for path in files:
        n_before = len(prompts)
        for n, record in _records(path):
            if max_samples is not None and len(prompts) - n_before >= max_samples:
                break
            question, history = _question(record, f"{path}:{n}")
            prompts.append(render_prompt(template_name, question, tokenizer, history=history))
        counts[path] = len(prompts) - n_before
        if counts[path] == 0:
            raise UserError(f"train_files: {path}: no prompts in it; give a file with at least one example")
    return prompts, counts
