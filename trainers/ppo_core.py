"""The math of PPO for language models, in plain torch: per-token log-probabilities, the
KL penalty, per-token rewards, GAE, whitening, and the clipped policy and value losses.

Shapes: ``B`` rollouts in a batch, ``T`` response tokens (right-padded); ``mask`` is 1 on
the response's real tokens (up to and including EOS) and 0 on the padding after it. The
model-free functions here are what the tests check against hand-computed numbers; the
rollout loop that feeds them lives in ``ppo.py``.

Follows Ziegler et al. 2019 / Ouyang et al. 2022 as trl's former PPOTrainer did: the
reward is the reward model's score on the last response token minus ``kl_coef`` times the
per-token KL estimate against the reference policy at every token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(token) [B, T] from the logits [B, T, V] that predict ``tokens`` [B, T], at the
    temperature the rollouts were sampled with (so old and new log-probs agree)."""
    from trl.trainer.utils import selective_log_softmax

    return selective_log_softmax(logits.float(), tokens, temperature)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1 (a scalar)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unbiased variance of ``x`` over the masked positions (a scalar)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    return var * n / (n - 1) if n > 1 else var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``x`` scaled to unit variance over the masked positions (and centred, unless
    ``shift_mean`` is False); padding positions come back as 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the sampled tokens' log-probs
    [B, T] -> [B, T]. ``k1`` = log p - log q (unbiased, can be negative per token); ``k3`` =
    (q/p - 1) - log(q/p) (unbiased and never negative; Schulman, "Approximating KL")."""
    log_ratio = logprobs - ref_logprobs
    if kind == "k1":
        return log_ratio
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {kind!r} (k1 or k3)")


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """[B, T] mask -> [B]: the index of each row's last real token (0 for an empty row)."""
    return (mask.sum(dim=1).long() - 1).clamp(min=0)


def per_token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor,
                      kl_coef: float) -> torch.Tensor:
    """Rewards [B, T]: ``-kl_coef * kl`` at every real token, plus the sequence's score [B]
    on its last real token (the reward model judges the whole response once)."""
    rewards = -kl_coef * kl * mask
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
        gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over response tokens.

    rewards, values, mask: [B, T]. delta_t = r_t + gamma * V_{t+1} - V_t, with V = 0 past
    the last real token (the episode ends there); A_t = delta_t + gamma * lam * A_{t+1}.
    Returns (advantages, returns = advantages + values), both [B, T], 0 on padding."""
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])  # [B]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


@dataclass
class LossParts:
    """What one minibatch's loss is made of, for logging (all detached floats)."""
    policy_loss: float
    value_loss: float
    clip_fraction: float
    value_clip_fraction: float
    approx_kl: float  # KL(old || new) of the update, 0.5 * E[(log ratio)^2]


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, float, float]:
    """The clipped surrogate objective, as a loss to minimise (PPO, Schulman et al. 2017):
    mean over tokens of max(-A * r, -A * clip(r, 1 - eps, 1 + eps)), r = p_new / p_old.
    Returns (loss, fraction of tokens where the clip was active, approx KL old->new)."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_frac = masked_mean((clipped > unclipped).float(), mask).item()
    approx_kl = masked_mean(0.5 * log_ratio.detach() ** 2, mask).item()
    return loss, clip_frac, approx_kl


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, float]:
    """Clipped value loss: 0.5 * mean max((V - R)^2, (V_clip - R)^2), where V_clip stays
    within ``clip_range`` of the value at rollout time. Returns (loss, clip fraction)."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    clip_frac = masked_mean((loss_clipped > loss_unclipped).float(), mask).item()
    return loss, clip_frac


class AdaptiveKLController:
    """Ziegler et al. (2019)'s adaptive KL coefficient: after each batch, move ``value`` by
    up to 20% x (batch size / horizon) towards keeping the sequence KL near ``target``."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


class RunningMoments:
    """Running mean and standard deviation of the scores seen so far (Chan et al.'s
    parallel update), for normalising reward-model scores across rollout batches."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-8

    def update(self, x: torch.Tensor) -> None:
        x = x.double()
        n, mean, var = x.numel(), x.mean().item(), x.var(unbiased=False).item()
        delta, total = mean - self.mean, self.count + n
        m2 = self.var * self.count + var * n + delta ** 2 * self.count * n / total
        self.mean, self.var, self.count = self.mean + delta * n / total, m2 / total, total

    @property
    def std(self) -> float:
        return max(self.var, 1e-12) ** 0.5
