"""``rm``: a reward model (a sequence classifier with one output) from preference pairs,
with trl's ``RewardTrainer`` (Bradley-Terry loss: -log sigmoid(r_chosen - r_rejected)).

A reward checkpoint is not a language model, so the harness's tasks cannot score it: each
checkpoint is scored instead by its pair accuracy and mean margin on held-out pairs
(``eval_fraction`` of them), stored in its manifest's ``eval``. ``load_reward_model`` and
``reward_scores`` load and query a checkpoint (full or LoRA) the way PPO needs; the text a
reward is read from is the prompt in the chat template + the response + EOS.

    aimed-eval train --stage rm --model out/sft/checkpoint-100 \\
        --train_files train/preference/medical_reward_test.json,train/preference/dpo_zh_500.jsonl
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError

from .base import StageConfig, StageRecipe, StageResult

NAME = "rm"
RECIPE = StageRecipe(order=2, side=True)  # its last checkpoint is the RL stages' reward model


@dataclass
class Config(StageConfig):
    """RM fields, besides the common ones (:class:`aimed.trainers.base.StageConfig`).

    eval_fraction: share of the pairs held out to score each checkpoint (pair accuracy and
        margin); 0 scores on the training pairs.
    eval_tasks: must stay empty (a reward model is not a language model).
    template_name: how prompts are laid out (default ``vicuna``, as ``sft``'s).
    """

    template_name: str = "vicuna"
    eval_tasks: list[str] = field(default_factory=list)
    eval_fraction: float = 0.1


def encode_pair_side(tokenizer, prompt: str, response: str, max_length: int) -> list[int]:
    """Token ids the reward is read from: prompt + response + EOS, at most ``max_length``
    (the response keeps its start and the EOS; the prompt keeps its end)."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    resp = tokenizer(response, add_special_tokens=False)["input_ids"][: max(1, max_length - len(eos) - 1)] + eos
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    budget = max_length - len(resp)
    return (prompt_ids[-budget:] if budget > 0 else []) + resp


def reward_scores(model, tokenizer, prompts: list[str], responses: list[str], max_length: int = 512,
                  batch_size: int = 8) -> list[float]:
    """The reward of each (prompt, response): prompt text already in the chat template."""
    ids = [encode_pair_side(tokenizer, p, r, max_length) for p, r in zip(prompts, responses)]
    return _rewards(model, tokenizer, ids, batch_size)


def _rewards(model, tokenizer, rows: list[list[int]], batch_size: int = 8) -> list[float]:
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                batch = tokenizer.pad({"input_ids": rows[i:i + batch_size]}, return_tensors="pt")
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits
                out += logits.squeeze(-1).float().tolist()
    finally:
        model.train(was_training)
    return out


def pair_figures(model, tokenizer, pairs: list[tuple[list[int], list[int]]]) -> dict:
    """Pair accuracy (chosen scored above rejected) and mean margin r_chosen - r_rejected."""
    chosen = _rewards(model, tokenizer, [c for c, _ in pairs])
    rejected = _rewards(model, tokenizer, [r for _, r in pairs])
    margins = [c - r for c, r in zip(chosen, rejected)]
    return {"pair_accuracy": sum(m > 0 for m in margins) / len(margins), "margin": sum(margins) / len(margins)}


def load_reward_model(folder: str | Path, device: Optional[str] = None):
    """(model in eval mode, tokenizer, manifest) of an ``rm`` checkpoint, full or LoRA."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from aimed.harness.manifest import read_manifest

    from .modeling import load_tokenizer

    folder = Path(folder)
    manifest = read_manifest(folder) or {}
    if manifest.get("model_kind") not in (None, "reward_model"):
        raise UserError(f"{folder}: a {manifest.get('stage')} checkpoint, not a reward model; give an rm checkpoint")
    base = manifest.get("base_folder") if manifest.get("adapter") else str(folder)
    if not base or not (Path(base) / "config.json").exists():
        raise UserError(f"{folder}: no reward model weights (base folder {base!r}); give an rm checkpoint folder")
    tokenizer = load_tokenizer(str(folder) if (folder / "tokenizer_config.json").exists() else base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1, dtype=torch.float32)
    if manifest.get("adapter"):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    return model, tokenizer, manifest


def train(config: Config) -> StageResult:
    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    from .checkpoints import CheckpointScorer, require_examples, run_trainer
    from .data_files import data_files
    from .lineage import resolve_parent, start_output, tokenizer_folder
    from .modeling import check_qlora, load_model, load_tokenizer, lora_config, training_args
    from .preference_data import read_all_pairs

    if config.eval_tasks:
        raise UserError("rm: eval_tasks must be empty: a reward model is not a language model; its checkpoints "
                        "are scored by pair accuracy on held-out pairs (eval_fraction)")
    if not 0 <= config.eval_fraction < 1:
        raise UserError(f"eval_fraction {config.eval_fraction}: give a share from 0 to below 1")
    check_qlora(config)
    parent = resolve_parent(config)
    pairs, counts = read_all_pairs(data_files(config.train_files), config.max_samples)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    encoded = []
    for p in pairs:
        prompt = p.prompt(config.template_name, tokenizer)
        encoded.append((encode_pair_side(tokenizer, prompt, p.chosen, config.max_length),
                        encode_pair_side(tokenizer, prompt, p.rejected, config.max_length)))
    random.Random(config.seed).shuffle(encoded)
    held = int(len(encoded) * config.eval_fraction)
    held_out, train_pairs = (encoded[:held], encoded[held:]) if held else (encoded, encoded)
    if not train_pairs:
        raise UserError("rm: no training pairs left after holding out eval_fraction; lower it")

    out, weights = start_output(NAME, config, parent)
    set_seed(config.seed)  # the reward head starts random: the same seed, the same head
    model = load_model(weights, config, "AutoModelForSequenceClassification", num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    peft = lora_config(config, "SEQ_CLS")  # peft trains and saves the head (score/classifier) in full
    before = {f"train_{k}_before": v for k, v in pair_figures(model, tokenizer, train_pairs).items()}
    dataset = Dataset.from_dict({"chosen_ids": [c for c, _ in train_pairs], "rejected_ids": [r for _, r in train_pairs]})
    args = training_args(RewardConfig, config, out, max_length=config.max_length)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=peft)
    require_examples(trainer, NAME, config.max_length)
    scorer = CheckpointScorer(NAME, config, parent, weights, adapter=peft is not None, data=counts,
                              kind="reward_model", extra_eval=lambda _: pair_figures(trainer.model, tokenizer, held_out))
    return run_trainer(trainer, scorer, out, {"pairs": len(train_pairs), "held_out_pairs": held, **before},
                       after=lambda: {f"train_{k}_after": v
                                      for k, v in pair_figures(trainer.model, tokenizer, train_pairs).items()})
