"""The reward of the RL stages: a reward model checkpoint of the ``rm`` stage (a sequence
classifier with one label, full weights or a LoRA adapter on its base) scoring the
rendered prompt followed by the response, as the ``rm`` stage trained it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from aimed.harness.errors import UserError
from aimed.harness.evaluate import read_manifest


def check_reward_model(folder: str) -> Path:
    """The reward model's folder, checked before anything trains; a UserError names the fix."""
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
    return p.resolve()


def _base_of_adapter(folder: Path) -> str:
    manifest = read_manifest(folder) or {}
    base = manifest.get("base_folder")
    if not base:
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base or not Path(base).is_dir():
        raise UserError(f"reward_model {folder}: its base model {base!r} is not a folder here")
    return base


class RewardModelScorer:
    """``scorer(prompts, responses) -> [score, ...]``: the reward model's scalar output."""

    __name__ = "reward_model"  # trl's GRPO/RLOO name their reward columns after it

    def __init__(self, folder: str, device: str = "cpu", batch_size: int = 8, max_length: int = 1024):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder_path = check_reward_model(folder)
        is_adapter = not (folder_path / "config.json").exists()
        weights = _base_of_adapter(folder_path) if is_adapter else str(folder_path)
        tok_source = folder_path if (folder_path / "tokenizer_config.json").exists() else weights
        self.tokenizer = AutoTokenizer.from_pretrained(tok_source)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.truncation_side = "left"  # a long prompt loses its start, never the response
        model = AutoModelForSequenceClassification.from_pretrained(weights, num_labels=1, dtype=torch.float32)
        if is_adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(folder_path)).merge_and_unload()
        if model.config.num_labels != 1:
            raise UserError(f"reward_model {folder}: has {model.config.num_labels} labels; a reward model has one")
        model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(device).eval().requires_grad_(False)
        self.device, self.batch_size, self.max_length = device, batch_size, max_length

    def __call__(self, prompts: Sequence[str], responses: Sequence[str], **_) -> list[float]:
        import torch

        eos = self.tokenizer.eos_token or ""
        texts = [p + r + eos for p, r in zip(prompts, responses)]
        scores: list[float] = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[i:i + self.batch_size], return_tensors="pt", padding=True,
                                     padding_side="right", truncation=True, max_length=self.max_length,
                                     add_special_tokens=False).to(self.device)
                scores.extend(self.model(**enc).logits[:, 0].float().tolist())
        return scores
