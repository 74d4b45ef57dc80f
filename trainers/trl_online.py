"""What the ``rloo`` and ``grpo`` stages share: trl's online RL trainers (``RLOOTrainer``,
``GRPOTrainer``) driven by the same prompts and reward model as ``ppo``.

Both sample ``num_generations`` responses a prompt and use the group itself as the
baseline (RLOO: the mean of the other responses; GRPO: the group's mean and spread), so
they need no value model. ``beta`` is the KL weight against the reference policy (the
parent; with LoRA the adapter-disabled model). Every checkpoint is scored like any stage's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from aimed.harness.errors import UserError

from .base import StageConfig, StageRecipe, StageResult

# Both run after sft and need the rm stage's reward model; ranked by the suite score.
ONLINE_RECIPE = StageRecipe(order=3, needs=("sft", "rm"), needs_reward_model=True, rank_by="suite/score")


@dataclass
class OnlineRLConfig(StageConfig):
    """Fields of the group-baseline RL stages (besides the common ones).

    reward_model: the ``rm`` stage's checkpoint folder. Required.
    num_generations: responses sampled a prompt (the group; at least 2).
        ``per_device_train_batch_size * gradient_accumulation_steps`` must be a multiple of it.
    max_completion_length: most new tokens a response may have.
    temperature: sampling temperature.
    beta: KL weight against the reference policy (0: no reference, no KL term).
    """

    template_name: str = "vicuna"  # as sft's and rm's
    reward_model: str = ""
    num_generations: int = 4
    max_completion_length: int = 64
    temperature: float = 1.0
    beta: float = 0.05
    learning_rate: float = 1e-5


def check_online_config(stage: str, c: OnlineRLConfig, need_reward_model: bool) -> None:
    from .rl_reward import check_reward_model

    if need_reward_model:
        check_reward_model(c.reward_model)
    if c.num_generations < 2:
        raise UserError(f"num_generations {c.num_generations}: give at least 2 ({stage} compares a prompt's responses)")
    batch = c.per_device_train_batch_size * c.gradient_accumulation_steps
    if batch % c.num_generations:
        raise UserError(f"per_device_train_batch_size x gradient_accumulation_steps = {batch}: must be a multiple "
                        f"of num_generations {c.num_generations}")
    if c.max_completion_length < 1 or c.max_completion_length >= c.max_length:
        raise UserError(f"max_completion_length {c.max_completion_length}: give a positive number below "
                        f"max_length {c.max_length}")
    if c.beta < 0 or c.temperature <= 0:
        raise UserError(f"beta {c.beta} / temperature {c.temperature}: beta must be >= 0, temperature > 0")


def as_trl_reward(reward: Callable, name: str = "reward_model") -> Callable:
    """``reward(prompts, responses)`` as trl calls a reward function: keyword arguments
    ``prompts``, ``completions`` (and more, ignored), a name for its log column."""
    def reward_func(prompts, completions, **_):
        return [float(x) for x in reward(list(prompts), list(completions))]

    reward_func.__name__ = name
    return reward_func


def reward_figures(log_history: list[dict]) -> dict:
    """first/last logged mean reward (trl's ``reward``) and the steps trained."""
    values = [h["reward"] for h in log_history if "reward" in h]
    out = {"steps": max((h.get("step", 0) for h in log_history), default=0)}
    if values:
        out["first_reward"], out["last_reward"] = float(values[0]), float(values[-1])
    return out


def online_stage(stage: str, trainer_name: str, args_name: str) -> Callable[..., StageResult]:
    """A stage module's ``train(config, reward_fn=None)`` that runs trl's ``trainer_name``
    configured by ``args_name`` (trl is imported only when the stage trains)."""
    def train(config: OnlineRLConfig, reward_fn: Optional[Callable] = None) -> StageResult:
        import trl

        return train_online(stage, config, getattr(trl, trainer_name), getattr(trl, args_name), reward_fn)

    train.__doc__ = (f"Train the ``{stage}`` stage with trl's ``{trainer_name}``; ``reward_fn(prompts, responses)"
                     " -> scores`` replaces the reward model (tests, Python callers).")
    return train


def train_online(stage: str, config: OnlineRLConfig, trainer_cls, args_cls, reward_fn: Optional[Callable] = None,
                 **extra_args) -> StageResult:
    """Run trl's ``trainer_cls`` (configured by ``args_cls``) as stage ``stage``."""
    from datasets import Dataset

    from .checkpoints import CheckpointScorer, run_trainer
    from .data_files import data_files
    from .dpo import keep_prompt_end
    from .lineage import resolve_parent, start_output, tokenizer_folder
    from .modeling import check_qlora, device_of, load_model, load_tokenizer, lora_config, training_args
    from .rl_reward import RewardModel
    from .rlhf_data import read_prompts

    check_online_config(stage, config, need_reward_model=reward_fn is None)
    check_qlora(config)
    parent = resolve_parent(config)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    prompts, counts = read_prompts(data_files(config.train_files), config.template_name, tokenizer,
                                   config.max_samples)
    budget = config.max_length - config.max_completion_length
    prompts = [keep_prompt_end(tokenizer, p, budget) for p in prompts]

    out, weights = start_output(stage, config, parent)
    reward = reward_fn or RewardModel(config.reward_model, device_of(config), max_length=config.max_length)
    args = training_args(args_cls, config, out, num_generations=config.num_generations,
                         max_completion_length=config.max_completion_length, temperature=config.temperature,
                         beta=config.beta, **extra_args)
    peft = lora_config(config)
    trainer = trainer_cls(model=load_model(weights, config), reward_funcs=as_trl_reward(reward), args=args,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), processing_class=tokenizer,
                          peft_config=peft)
    scorer = CheckpointScorer(stage, config, parent, weights, adapter=peft is not None, data=counts)
    return run_trainer(trainer, scorer, out, {"prompts": len(prompts)},
                       after=lambda: reward_figures(trainer.state.log_history))
