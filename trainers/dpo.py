"""``dpo``: direct preference optimisation from an SFT checkpoint, with trl's ``DPOTrainer``.

The reference model is the parent checkpoint: with LoRA it is the policy with its new
adapter disabled (a LoRA parent is merged first, so that is exactly the SFT model); with
full fine-tuning trl loads a frozen copy of the parent. Prompts are laid out in the chat
template the checkpoint is scored with.

    aimed-eval train --stage dpo --model out/sft/checkpoint-100 \\
        --train_files train/preference/dpo_zh_500.jsonl --beta 0.1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aimed.harness.errors import UserError

from .base import StageConfig, StageRecipe, StageResult

NAME = "dpo"
RECIPE = StageRecipe(order=4, needs=("sft",), rank_by="suite/score")
LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


@dataclass
class Config(StageConfig):
    """DPO fields, besides the common ones (:class:`aimed.trainers.base.StageConfig`).

    beta: strength of the KL pull towards the reference model (trl's ``beta``).
    loss_type: ``sigmoid`` (the DPO paper), ``hinge``, ``ipo`` or ``robust``.
    learning_rate: 5e-5 by default (DPO wants smaller steps than SFT).
    template_name: how prompts are laid out (default ``vicuna``, as ``sft``'s).
    max_prompt_length: a longer prompt keeps its last tokens (default: half of max_length),
        so that every pair keeps room for its responses.
    """

    template_name: str = "vicuna"
    learning_rate: float = 5e-5
    beta: float = 0.1
    loss_type: str = "sigmoid"
    max_prompt_length: Optional[int] = None


def keep_prompt_end(tokenizer, prompt: str, budget: int) -> str:
    """``prompt`` cut to its last ``budget`` tokens (the question, nearest the answer)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return prompt if len(ids) <= budget else tokenizer.decode(ids[-budget:])


def reward_figures(log_history: list[dict]) -> dict:
    """first/last logged implicit-reward margin and accuracy of chosen over rejected."""
    out = {}
    for key, name in (("rewards/margins", "margin"), ("rewards/accuracies", "accuracy")):
        values = [h[key] for h in log_history if key in h]
        if values:
            out[f"first_{name}"], out[f"last_{name}"] = float(values[0]), float(values[-1])
    return out


def train(config: Config) -> StageResult:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from .checkpoints import CheckpointScorer, require_examples, run_trainer
    from .data_files import data_files
    from .lineage import resolve_parent, start_output, tokenizer_folder
    from .modeling import check_qlora, load_model, load_tokenizer, lora_config, training_args
    from .preference_data import read_all_pairs

    if config.loss_type not in LOSS_TYPES:
        raise UserError(f"loss_type {config.loss_type!r}: use one of {', '.join(LOSS_TYPES)}")
    budget = config.max_prompt_length or config.max_length // 2
    if not 0 < budget < config.max_length:
        raise UserError(f"max_prompt_length {budget}: give a number of tokens below max_length {config.max_length}")
    if config.beta <= 0:
        raise UserError(f"beta {config.beta}: give a positive number")
    check_qlora(config)
    parent = resolve_parent(config)
    pairs, counts = read_all_pairs(data_files(config.train_files), config.max_samples)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    rows = {"prompt": [], "chosen": [], "rejected": []}
    for p in pairs:
        rows["prompt"].append(keep_prompt_end(tokenizer, p.prompt(config.template_name, tokenizer), budget))
        rows["chosen"].append(p.chosen)
        rows["rejected"].append(p.rejected)

    out, weights = start_output(NAME, config, parent)
    args = training_args(DPOConfig, config, out, max_length=config.max_length, beta=config.beta,
                         loss_type=[config.loss_type])
    peft = lora_config(config)
    trainer = DPOTrainer(model=load_model(weights, config), ref_model=None, args=args,
                         train_dataset=Dataset.from_dict(rows), processing_class=tokenizer, peft_config=peft)
    require_examples(trainer, NAME, config.max_length)
    scorer = CheckpointScorer(NAME, config, parent, weights, adapter=peft is not None, data=counts)
    return run_trainer(trainer, scorer, out, {"pairs": len(pairs)},
                       after=lambda: reward_figures(trainer.state.log_history))
