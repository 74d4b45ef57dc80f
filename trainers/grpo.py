"""``grpo``: Group Relative Policy Optimization (Shao et al. 2024) with trl's ``GRPOTrainer``,
the ``rm`` stage's reward model giving the reward: each response's advantage is its reward
against the mean (and spread) of its prompt's group. No value model.

    aimed-eval train --stage grpo --model out/sft/checkpoint-100 --reward_model out/rm/checkpoint-50 \\
        --train_files train/preference/dpo_zh_500.jsonl --num_generations 4
"""

from __future__ import annotations

from dataclasses import dataclass

from .trl_online import ONLINE_RECIPE, OnlineRLConfig, online_stage

NAME = "grpo"
RECIPE = ONLINE_RECIPE


@dataclass
class Config(OnlineRLConfig):
    """GRPO's fields are those of :class:`aimed.trainers.trl_online.OnlineRLConfig`; ``beta``
    defaults to 0.05 here (trl's own default, 0, drops the KL to the reference)."""


train = online_stage(NAME, "GRPOTrainer", "GRPOConfig")
