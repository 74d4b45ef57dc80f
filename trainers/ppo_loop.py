"""One PPO iteration: collect a rollout batch, then several epochs of clipped updates over
shuffled minibatches of it. Independent of configs, files and scoring (``ppo.py`` has
those), so the tests drive it directly with a Python reward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from . import ppo_core
from .ppo_model import PolicyWithValue
from .ppo_rollout import RewardFn, Rollout, RolloutSettings, collect, response_slice


@dataclass
class UpdateSettings:
    ppo_epochs: int = 4
    mini_batch_size: int = 4  # rollouts in one forward/backward
    gradient_accumulation_steps: int = 1  # minibatches per optimizer step
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    max_grad_norm: float = 1.0


@dataclass
class PPOLoop:
    policy: PolicyWithValue
    tokenizer: object
    optimizer: torch.optim.Optimizer
    reward_fn: RewardFn
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    moments: ppo_core.RunningMoments = field(default_factory=ppo_core.RunningMoments)
    scheduler: Optional[object] = None  # a learning-rate schedule stepped with the optimizer
    # under a launcher: gradients and figures averaged over the processes (launch.py)
    sync_gradients: Optional[Callable] = None
    sync_figures: Optional[Callable] = None

    def __post_init__(self):
        r = self.rollout
        self.kl_controller = None if r.target_kl is None else \
            ppo_core.AdaptiveKLController(r.kl_coef, r.target_kl, r.kl_horizon)

    def step(self, prompts: Sequence[str]) -> dict:
        """Collect on ``prompts`` and update; returns the iteration's statistics."""
        batch, stats = collect(self.policy, self.tokenizer, prompts, self.reward_fn, self.rollout, self.moments)
        stats.update(self._update(batch))
        if self.sync_figures is not None:
            stats = self.sync_figures(stats)
        stats["kl_coef"] = self.rollout.kl_coef
        if self.kl_controller is not None:  # the next batch's coefficient
            self.rollout.kl_coef = self.kl_controller.update(stats["kl"], len(prompts))
        return stats

    def _update(self, batch: Rollout) -> dict:
        u, policy = self.update, self.policy
        policy.train()
        params = [p for p in policy.parameters() if p.requires_grad]
        n = batch.input_ids.shape[0]
        parts: list[ppo_core.LossParts] = []
        for _ in range(u.ppo_epochs):
            order = torch.randperm(n, generator=self.generator)
            minibatches = [order[i:i + u.mini_batch_size] for i in range(0, n, u.mini_batch_size)]
            for k, rows in enumerate(minibatches):
                loss, part = self._loss(batch.select(rows.to(batch.input_ids.device)))
                (loss * len(rows) / (u.mini_batch_size * u.gradient_accumulation_steps)).backward()
                parts.append(part)
                if (k + 1) % u.gradient_accumulation_steps == 0 or k + 1 == len(minibatches):
                    if self.sync_gradients is not None:
                        self.sync_gradients(params)
                    torch.nn.utils.clip_grad_norm_(params, u.max_grad_norm)
                    self.optimizer.step()
                    if self.scheduler is not None:
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
        policy.eval()
        return {name: sum(getattr(p, name) for p in parts) / len(parts)
                for name in ppo_core.LossParts.__dataclass_fields__}

    def _loss(self, mb: Rollout) -> tuple[torch.Tensor, ppo_core.LossParts]:
        u, P = self.update, mb.prompt_len
        logits, values = self.policy(mb.input_ids, mb.attention_mask)
        tokens = mb.input_ids[:, P:]
        logprobs = ppo_core.token_logprobs(response_slice(logits, P), tokens, self.rollout.temperature)
        values = response_slice(values, P).float()
        mask = mb.response_mask
        pg_loss, clip_frac, approx_kl = ppo_core.policy_loss(logprobs, mb.logprobs, mb.advantages, mask,
                                                             u.clip_range)
        vf_loss, vf_clip_frac = ppo_core.value_loss(values, mb.values, mb.returns, mask, u.clip_range_value)
        part = ppo_core.LossParts(pg_loss.item(), vf_loss.item(), clip_frac, vf_clip_frac, approx_kl)
        return pg_loss + u.vf_coef * vf_loss, part
