"""``ppo``: RLHF with PPO (Schulman et al. 2017; Ouyang et al. 2022) from the SFT checkpoint,
the ``rm`` stage's reward model giving the reward.

Each iteration samples one response for each of ``rollout_batch_size`` prompts (the
questions of ``train_files``, rendered with ``template_name``), scores them with the reward
model, subtracts ``kl_coef`` x the KL to the reference policy (the SFT model: the LoRA
adapter switched off, or a frozen copy for full fine-tuning) at every token, estimates
advantages with GAE on a value head, and runs ``ppo_epochs`` epochs of clipped policy and
value updates over minibatches of ``per_device_train_batch_size`` rollouts. A "step" is
one iteration: ``max_steps`` iterations, or ``num_train_epochs`` passes over the prompts;
``save_steps`` saves (and scores) a checkpoint every N iterations, and the last one. Every
iteration's figures (reward, KL, losses, clip fractions) go to ``ppo_log.jsonl`` in
``output_dir`` and to the progress bar. One process, one device (no multi-GPU yet).

trl 1.16 has no PPO trainer; this stage uses trl's log-prob gather, peft's adapters and the
framework's checkpoint scoring. The math is in ``ppo_core``, one iteration in ``ppo_loop``.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError

from . import launch
from .base import StageConfig, StageRecipe, StageResult

NAME = "ppo"
RECIPE = StageRecipe(order=3, needs=("sft", "rm"), needs_reward_model=True, rank_by="suite/score")
LOG_FILE = "ppo_log.jsonl"  # in output_dir: one line of figures an iteration


@dataclass
class Config(StageConfig):
    """PPO's own fields (the common ones are in :class:`StageConfig`).

    reward_model: the ``rm`` stage's checkpoint folder. Required.
    rollout_batch_size: prompts (one response each) sampled per iteration.
    ppo_epochs: passes of updates over each rollout batch.
    response_length: most new tokens a response may have.
    temperature: sampling temperature of the rollouts.
    kl_coef: weight of the per-token KL penalty against the reference policy.
    kl_estimator: ``k1`` (log p - log q) or ``k3`` (never negative).
    target_kl: adapt ``kl_coef`` after each batch to keep the response's KL near this
        (Ziegler et al. 2019's controller, over ``kl_horizon`` samples); None keeps it fixed.
    clip_range, clip_range_value: PPO's clip of the probability ratio and of the value change.
    vf_coef: weight of the value loss.
    gamma, lam: GAE's discount and lambda.
    whiten_advantages: normalise advantages over each batch.
    score_norm: divide reward-model scores by their running standard deviation.
    score_clip: clip the (normalised) scores to [-score_clip, score_clip].
    missing_eos_penalty: subtracted from the score of a response that did not end within
        ``response_length`` tokens.
    max_grad_norm: gradient clipping.
    """

    template_name: str = "vicuna"  # as sft's and rm's: the layout the policy and the reward model know
    reward_model: str = ""
    rollout_batch_size: int = 16
    ppo_epochs: int = 4
    response_length: int = 64
    temperature: float = 1.0
    kl_coef: float = 0.05
    kl_estimator: str = "k1"
    target_kl: Optional[float] = None
    kl_horizon: int = 10000
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    whiten_advantages: bool = True
    score_norm: bool = False
    score_clip: Optional[float] = None
    missing_eos_penalty: Optional[float] = None
    max_grad_norm: float = 1.0
    learning_rate: float = 1e-5
    save_steps: int = 50


def check_ppo_config(c: Config, need_reward_model: bool = True) -> None:
    from .rl_reward import check_reward_model

    if need_reward_model:
        check_reward_model(c.reward_model)
    if c.kl_estimator not in ("k1", "k3"):
        raise UserError(f"kl_estimator {c.kl_estimator!r}: use k1 or k3")
    for key in ("rollout_batch_size", "ppo_epochs", "response_length"):
        if getattr(c, key) < 1:
            raise UserError(f"{key} {getattr(c, key)}: give a positive number")
    if c.target_kl is not None and c.target_kl <= 0:
        raise UserError(f"target_kl {c.target_kl}: give a positive number, or leave it out for a fixed kl_coef")
    for key in ("temperature", "clip_range", "clip_range_value", "kl_horizon"):
        if getattr(c, key) <= 0:
            raise UserError(f"{key} {getattr(c, key)}: give a positive number")
    if c.response_length >= c.max_length:
        raise UserError(f"response_length {c.response_length}: must be below max_length {c.max_length} "
                        "(prompt and response share it)")
    size = launch.processes().size
    if c.rollout_batch_size % size:  # every process rolls out (and steps) as many as the others
        raise UserError(f"rollout_batch_size {c.rollout_batch_size}: give a multiple of the {size} processes "
                        "of this launch")


def train(config: Config, reward_fn=None) -> StageResult:
    """Run PPO. ``reward_fn(prompts, responses) -> scores`` replaces the reward model (tests,
    Python callers; a YAML config always names a reward model)."""
    from .data_files import data_files
    from .lineage import resolve_parent, start_output, tokenizer_folder
    from .modeling import check_qlora, load_tokenizer
    from .rlhf_data import read_prompts

    check_ppo_config(config, need_reward_model=reward_fn is None)
    check_qlora(config)
    files = data_files(config.train_files)
    parent = resolve_parent(config)
    tokenizer = load_tokenizer(tokenizer_folder(parent)) if config.template_name == "tokenizer" else None
    prompts, counts = read_prompts(files, config.template_name, tokenizer, config.max_samples)
    out, weights = start_output(NAME, config, parent)  # only now is anything written
    return _run(config, parent, weights, out, prompts, counts, reward_fn)


def _build_policy(config: Config, weights: str):
    from peft import get_peft_model
    from trl.trainer.utils import disable_dropout_in_model

    from .modeling import device_of, load_model, lora_config
    from .ppo_model import PolicyWithValue

    device = device_of(config)
    lm = load_model(weights, config)
    if config.finetune == "full":
        ref = load_model(weights, config)
        policy = PolicyWithValue(lm, ref)
    else:  # lora / qlora: the adapter-disabled model is the reference
        policy = PolicyWithValue(get_peft_model(lm, lora_config(config)))
    disable_dropout_in_model(policy)  # rollout and update log-probs must come from the same function
    if config.finetune != "qlora":
        policy.to(device)
    policy.value_head.to(device)
    return policy, device


def _run(config: Config, parent, weights: str, out: Path, prompts: list[str], counts: dict, reward_fn) -> StageResult:
    import torch
    from transformers import get_scheduler

    from .checkpoints import CheckpointScorer
    from .modeling import load_tokenizer
    from .ppo_loop import PPOLoop, UpdateSettings
    from .ppo_rollout import RolloutSettings
    from .progress import stage_bar
    from .rl_reward import RewardModel

    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(weights)
    tokenizer.truncation_side = "left"  # a long prompt loses its start, never the assistant's opening
    policy, device = _build_policy(config, weights)
    reward = reward_fn or RewardModel(config.reward_model, device, max_length=config.max_length)
    iterations = config.max_steps if config.max_steps > 0 else \
        max(1, math.ceil(config.num_train_epochs * len(prompts) / config.rollout_batch_size))
    minibatches = math.ceil(config.rollout_batch_size / config.per_device_train_batch_size)
    opt_steps = iterations * config.ppo_epochs * math.ceil(minibatches / config.gradient_accumulation_steps)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=config.learning_rate)
    loop = PPOLoop(
        policy, tokenizer, optimizer, reward,
        RolloutSettings(**{k: getattr(config, k) for k in RolloutSettings.__dataclass_fields__
                           if k != "max_prompt_length"}, max_prompt_length=config.max_length - config.response_length),
        UpdateSettings(**{k: getattr(config, k) for k in UpdateSettings.__dataclass_fields__
                          if k != "mini_batch_size"}, mini_batch_size=config.per_device_train_batch_size),
        generator=torch.Generator().manual_seed(config.seed),
        scheduler=get_scheduler(config.lr_scheduler_type, optimizer, config.warmup_steps, opt_steps))
    scorer = CheckpointScorer(NAME, config, parent, weights, adapter=config.finetune != "full", data=counts)
    batches = _prompt_batches(prompts, config.rollout_batch_size, config.seed)
    # under a launcher every process rolls out its share of each batch; the gradients and the
    # figures are averaged, and the main process alone writes the log and the checkpoints
    main = launch.is_main()
    loop.sync_gradients, loop.sync_figures = launch.average_gradients, launch.average_figures
    history: list[dict] = []
    bar = stage_bar(NAME, iterations, unit="iter")  # checkpoint lines go above it (progress.write)
    with bar, open(out / LOG_FILE if main else os.devnull, "w", encoding="utf-8") as log:
        for step in range(1, iterations + 1):
            stats = loop.step(launch.my_share(next(batches)))
            history.append(stats)
            log.write(json.dumps({"step": step, **stats}) + "\n")
            log.flush()
            bar.update()
            bar.set_postfix(reward=f"{stats['reward']:.3f}", kl=f"{stats['kl']:.3f}")
            if step % config.save_steps == 0 or step == iterations:
                folder = out / f"checkpoint-{step}"
                with launch.main_process_first():
                    if main:
                        policy.save(folder, tokenizer)
                        scorer.checkpoint_saved(folder, step, {k: round(v, 6) for k, v in stats.items()})
    return scorer.finish(out, reward_figures(history))


def _prompt_batches(prompts: list[str], size: int, seed: int):
    """Endless batches of ``size`` prompts: shuffled passes over the prompts, one after another."""
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        while len(order) < size:
            epoch = list(range(len(prompts)))
            rng.shuffle(epoch)
            order += epoch
        yield [prompts[i] for i in order[:size]]
        order = order[size:]


def reward_figures(history: list[dict]) -> dict:
    """The stage's headline figures: mean reward and KL of the first and last quarter of
    the iterations (at least one each), and the number of iterations."""
    k = max(1, len(history) // 4)

    def mean(key, rows):
        return sum(r[key] for r in rows) / len(rows)

    return {"steps": len(history), "first_reward": mean("reward", history[:k]),
            "last_reward": mean("reward", history[-k:]), "first_kl": mean("kl", history[:k]),
            "last_kl": mean("kl", history[-k:])}
