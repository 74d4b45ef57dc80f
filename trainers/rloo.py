"""``rloo``: REINFORCE Leave-One-Out (Ahmadian et al. 2024) with trl's ``RLOOTrainer``, the
``rm`` stage's reward model giving the reward: each response's baseline is the mean reward
of the other responses to the same prompt. A cheaper alternative to ``ppo`` (no value model).

    aimed-eval train --stage rloo --model out/sft/checkpoint-100 --reward_model out/rm/checkpoint-50 \\
        --train_files train/preference/dpo_zh_500.jsonl --num_generations 4
"""

from __future__ import annotations

from dataclasses import dataclass

from .trl_online import ONLINE_RECIPE, OnlineRLConfig, online_stage

NAME = "rloo"
RECIPE = ONLINE_RECIPE


@dataclass
class Config(OnlineRLConfig):
    """RLOO's fields are those of :class:`aimed.trainers.trl_online.OnlineRLConfig`."""


train = online_stage(NAME, "RLOOTrainer", "RLOOConfig")
