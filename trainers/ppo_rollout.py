"""One PPO rollout batch: sample responses from the policy, score them, and turn the
scores into per-token advantages and returns (``ppo_core`` does the math).

Prompts are left-padded so every response starts at the same column ``P``; responses are
cut after their first EOS and right-padded. ``input_ids`` [B, P + T] holds both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from . import ppo_core
from .ppo_model import PolicyWithValue

# (prompts, responses) -> one score a response; the reward model or a Python function.
RewardFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


@dataclass
class RolloutSettings:
    response_length: int = 64
    temperature: float = 1.0
    max_prompt_length: int = 256
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    target_kl: Optional[float] = None  # adapt kl_coef to keep the sequence KL near this (None: fixed)
    kl_horizon: int = 10000
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    missing_eos_penalty: Optional[float] = None  # subtracted from the score of a response that never ended
    score_norm: bool = False  # divide scores by the running std of all scores so far
    score_clip: Optional[float] = None  # then clip them to [-score_clip, score_clip]


@dataclass
class Rollout:
    input_ids: torch.Tensor  # [B, P + T]
    attention_mask: torch.Tensor  # [B, P + T]
    response_mask: torch.Tensor  # [B, T] float: 1 up to and including EOS
    logprobs: torch.Tensor  # [B, T] policy at sampling time
    ref_logprobs: torch.Tensor  # [B, T]
    values: torch.Tensor  # [B, T]
    advantages: torch.Tensor  # [B, T]
    returns: torch.Tensor  # [B, T]
    raw_scores: torch.Tensor  # [B] what the reward gave
    prompt_len: int  # P
    responses: list[str]

    def select(self, rows: torch.Tensor) -> "Rollout":
        """The rollouts at ``rows`` (a minibatch)."""
        kw = {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        kw["responses"] = [self.responses[i] for i in rows.tolist()]
        return Rollout(**kw)


def response_slice(t: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """[B, P + T, ...] per-position outputs -> [B, T, ...]: the positions that predict (or
    hold the value before) each response token."""
    return t[:, prompt_len - 1:-1]


def eos_mask(responses: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] token ids -> (mask [B, T] float, 1 up to and including the first EOS; ended [B] bool)."""
    is_eos = torch.isin(responses, torch.tensor(eos_ids, device=responses.device))
    ended = is_eos.any(dim=1)
    T = responses.shape[1]
    first = torch.where(ended, is_eos.float().argmax(dim=1), torch.full_like(ended, T - 1, dtype=torch.long))
    mask = torch.arange(T, device=responses.device)[None, :] <= first[:, None]
    return mask.float(), ended


def eos_ids_of(tokenizer, model) -> list[int]:
    ids = {tokenizer.eos_token_id}
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None)
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def sample(policy: PolicyWithValue, tokenizer, prompts: Sequence[str], s: RolloutSettings):
    """Generate one response a prompt: (input_ids, attention_mask, response_mask, ended, P)."""
    device = policy.value_head.weight.device
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left", truncation=True,
                    max_length=s.max_prompt_length, add_special_tokens=False).to(device)
    eos_ids = eos_ids_of(tokenizer, policy.lm)
    policy.lm.eval()
    # Plain sampling at the temperature, whatever the checkpoint's generation_config says
    # (top-k/top-p/penalties would make the rollout policy differ from the one trained).
    out = policy.lm.generate(**enc, do_sample=True, temperature=s.temperature, top_k=0, top_p=1.0, min_p=None,
                             typical_p=1.0, repetition_penalty=1.0, max_new_tokens=s.response_length,
                             eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id)
    P = enc["input_ids"].shape[1]
    responses = out[:, P:]
    mask, ended = eos_mask(responses, eos_ids)
    responses = torch.where(mask.bool(), responses, torch.full_like(responses, tokenizer.pad_token_id))
    input_ids = torch.cat([enc["input_ids"], responses], dim=1)
    attention_mask = torch.cat([enc["attention_mask"], mask.long()], dim=1)
    return input_ids, attention_mask, mask, ended, P


@torch.no_grad()
def collect(policy: PolicyWithValue, tokenizer, prompts: Sequence[str], reward_fn: RewardFn,
            s: RolloutSettings, moments: ppo_core.RunningMoments) -> tuple[Rollout, dict]:
    """Sample, score and compute advantages for one batch of prompts; returns the rollout
    and its statistics (mean raw score, KL to the reference, response length, ...)."""
    input_ids, attention_mask, mask, ended, P = sample(policy, tokenizer, prompts, s)
    tokens = input_ids[:, P:]  # [B, T]
    logits, values = policy(input_ids, attention_mask)
    logprobs = ppo_core.token_logprobs(response_slice(logits, P), tokens, s.temperature)
    ref_logits = policy.reference_logits(input_ids, attention_mask)
    ref_logprobs = ppo_core.token_logprobs(response_slice(ref_logits, P), tokens, s.temperature)
    values = response_slice(values, P).float()
    del logits, ref_logits

    texts = tokenizer.batch_decode([t[m.bool()] for t, m in zip(tokens, mask)], skip_special_tokens=True)
    raw = torch.tensor([float(x) for x in reward_fn(list(prompts), texts)], device=values.device)
    scores = raw.clone()
    if s.missing_eos_penalty is not None:
        scores = scores - s.missing_eos_penalty * (~ended).float()
    if s.score_norm:
        moments.update(scores)
        scores = scores / moments.std
    if s.score_clip is not None:
        scores = scores.clamp(-s.score_clip, s.score_clip)

    kl = ppo_core.kl_estimate(logprobs, ref_logprobs, s.kl_estimator) * mask
    rewards = ppo_core.per_token_rewards(scores, kl, mask, s.kl_coef)
    advantages, returns = ppo_core.gae(rewards, values, mask, s.gamma, s.lam)
    if s.whiten_advantages:
        advantages = ppo_core.masked_whiten(advantages, mask)
    rollout = Rollout(input_ids, attention_mask, mask, logprobs, ref_logprobs, values * mask,
                      advantages, returns, raw, P, texts)
    stats = {"reward": raw.mean().item(), "score": scores.mean().item(),
             "kl": kl.sum(dim=1).mean().item(), "response_length": mask.sum(dim=1).mean().item(),
             "eos_fraction": ended.float().mean().item()}
    return rollout, stats
