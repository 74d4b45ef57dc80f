"""The reward of the RL stages (ppo, rloo, grpo): an ``rm`` stage checkpoint scoring the
rendered prompt + response + EOS, exactly as the ``rm`` stage trained it
(:func:`aimed.trainers.rm.reward_scores`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from aimed.harness.errors import UserError
from aimed.harness.manifest import read_manifest


def check_reward_model(folder: str) -> Path:
    """The reward model's folder, checked before anything is written; a UserError names the fix."""
    if not folder:
        raise UserError("reward_model: give the reward model checkpoint (a folder the rm stage wrote)")
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise UserError(f"reward_model {folder}: no such folder; train the rm stage first and give its checkpoint")
    if not ((p / "config.json").exists() or (p / "adapter_config.json").exists()):
        raise UserError(f"reward_model {folder}: not a checkpoint folder (no config.json or adapter_config.json)")
    manifest = read_manifest(p.resolve()) or {}
    if manifest.get("model_kind") not in (None, "reward_model"):
        raise UserError(f"reward_model {folder}: a {manifest.get('stage')} checkpoint, not a reward model; "
                        "give a checkpoint of the rm stage")
    if not manifest and not _is_sequence_classifier(p):  # a language model would get a random score head
        raise UserError(f"reward_model {folder}: not a reward model (no sequence-classification head); "
                        "give a checkpoint of the rm stage")
    return p.resolve()


def _is_sequence_classifier(folder: Path) -> bool:
    for name, key in (("config.json", "architectures"), ("adapter_config.json", "task_type")):
        if (folder / name).exists():
            try:
                value = json.loads((folder / name).read_text(encoding="utf-8")).get(key) or ""
            except ValueError:
                raise UserError(f"{folder / name}: not valid JSON; the checkpoint is damaged") from None
            return "SequenceClassification" in str(value) or value == "SEQ_CLS"
    return False


class RewardModel:
    """``reward(prompts, responses) -> [score, ...]`` from an rm checkpoint (full or LoRA);
    ``prompts`` are already in the chat template."""

    def __init__(self, folder: str, device: str, max_length: int = 512, batch_size: int = 8):
        from .rm import load_reward_model

        self.model, self.tokenizer, _ = load_reward_model(check_reward_model(folder), device)
        self.max_length, self.batch_size = max_length, batch_size

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        from .rm import reward_scores

        return reward_scores(self.model, self.tokenizer, list(prompts), list(responses), self.max_length,
                             self.batch_size)
