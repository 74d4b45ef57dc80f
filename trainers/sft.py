"""``sft``: supervised fine-tuning on instructions, conversations and task items, with the
loss on the responses only (trl's ``SFTTrainer`` on sequences tokenized here, so that every
template of the harness and every data format are handled the same way).

    aimed-eval train --stage sft --model out/pt/checkpoint-200 \\
        --train_files train/sft/huatuo_llama_data.json,train/sft/medical_sft_1K_format.jsonl
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aimed.harness.errors import UserError

from .base import StageConfig, StageRecipe, StageResult

NAME = "sft"
RECIPE = StageRecipe(order=1, rank_by="suite/score")


@dataclass
class Config(StageConfig):
    """SFT fields, besides the common ones (:class:`aimed.trainers.base.StageConfig`).

    train_tasks: harness tasks whose items become instructions (``demo_mcq``): the prompt the
        harness puts, and the gold answer as the response. Either this or train_files.
    template_name: defaults to ``vicuna`` here (a chat checkpoint needs a template; the
        same one scores it).
    """

    template_name: str = "vicuna"
    train_tasks: list[str] = field(default_factory=list)


def load_examples(config: Config, tokenizer) -> tuple[list[tuple[list[int], list[int]]], dict]:
    """Tokenized (input_ids, labels) of every file and task, and ``{file: examples}``."""
    from .data_files import data_files
    from aimed.harness.templates import start_token_ids

    from .sft_data import dialogue_segments, encode_segments, read_dialogues, task_segments

    if not config.train_files and not config.train_tasks:
        raise UserError("sft: give train_files (instruction or conversation files) or train_tasks")
    examples, counts = [], {}
    start = start_token_ids(config.template_name, tokenizer)  # as the harness starts the template's prompts
    for path in data_files(config.train_files) if config.train_files else []:
        dialogues = read_dialogues(path, config.max_samples)
        for _, turns, system in dialogues:
            examples.append(encode_segments(dialogue_segments(turns, system, config.template_name, tokenizer),
                                            tokenizer, config.max_length, start))
        counts[path] = len(dialogues)
    for _, segments in task_segments(config.train_tasks, config.template_name, tokenizer, config.max_samples,
                                     counts) if config.train_tasks else []:
        examples.append(encode_segments(segments, tokenizer, config.max_length, start))
    kept = [e for e in examples if any(label != -100 for label in e[1])]
    if not kept:
        raise UserError(f"sft: no example keeps a response within max_length {config.max_length}; "
                        "raise max_length")
    return kept, counts


def train_on_tokens(stage: str, config: StageConfig, examples: list[tuple[list[int], list[int]]],
                    counts: dict, parent, tokenizer) -> StageResult:
    """Train a causal LM on tokenized examples with trl's SFTTrainer; every save scored."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from .checkpoints import CheckpointScorer, require_examples, run_trainer
    from .lineage import start_output
    from .modeling import load_model, lora_config, training_args

    out, weights = start_output(stage, config, parent)
    dataset = Dataset.from_dict({"input_ids": [e[0] for e in examples], "labels": [e[1] for e in examples]})
    args = training_args(SFTConfig, config, out, max_length=config.max_length, packing=False,
                         dataset_num_proc=None, completion_only_loss=None)
    peft = lora_config(config)
    trainer = SFTTrainer(model=load_model(weights, config), args=args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft)
    require_examples(trainer, stage, config.max_length)
    scorer = CheckpointScorer(stage, config, parent, weights, adapter=peft is not None, data=counts)
    return run_trainer(trainer, scorer, out, {"examples": len(examples)})


def train(config: Config) -> StageResult:
    from .lineage import resolve_parent, tokenizer_folder
    from .modeling import check_qlora, load_tokenizer

    check_qlora(config)
    parent = resolve_parent(config)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    examples, counts = load_examples(config, tokenizer)
    return train_on_tokens(NAME, config, examples, counts, parent, tokenizer)
