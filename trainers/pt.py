"""``pt``: continued pretraining on raw text, packed into blocks of ``max_length`` tokens.

Documents (one a line of a ``.txt`` file, or the ``text`` of JSON records) are tokenized,
each closed by EOS, joined, and cut into blocks of exactly ``block_size`` tokens (the tail
shorter than a block is dropped, as in transformers' ``run_clm``); the loss is on every
token. Training is trl's ``SFTTrainer`` on those blocks.

    aimed-eval train --stage pt --model path/to/base --train_files train/pretrain/fever.txt
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aimed.harness.errors import UserError

from .base import StageConfig, StageRecipe, StageResult

NAME = "pt"
RECIPE = StageRecipe(order=0, rank_by="suite/score")


@dataclass
class Config(StageConfig):
    """PT fields, besides the common ones (:class:`aimed.trainers.base.StageConfig`).

    block_size: tokens a packed block (default: ``max_length``).
    eval_tasks: the common default, ``demo``; a PT checkpoint is scored without a template
        (``template_name: raw``).
    """

    block_size: Optional[int] = None


def pack(docs: list[str], tokenizer, block_size: int) -> list[list[int]]:
    """Blocks of ``block_size`` tokens of the documents joined with EOS."""
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    for doc in docs:
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + eos
    return [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def train(config: Config) -> StageResult:
    from .data_files import data_files, read_texts
    from .lineage import resolve_parent, tokenizer_folder
    from .modeling import check_qlora, load_tokenizer
    from .sft import train_on_tokens

    check_qlora(config)
    block = config.block_size or config.max_length
    if block < 2:
        raise UserError(f"block_size {block}: give at least 2 tokens")
    parent = resolve_parent(config)
    docs, counts = [], {}
    for path in data_files(config.train_files):
        got = read_texts(path, config.max_samples)
        if not got:
            raise UserError(f"{path}: no text (empty file); give one document a line")
        docs += got
        counts[path] = len(got)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    blocks = pack(docs, tokenizer, block)
    if not blocks:
        raise UserError(f"train_files: the text makes fewer than {block} tokens, not one block; "
                        "give more text or a smaller block_size")
    examples = [(b, list(b)) for b in blocks]
    return train_on_tokens(NAME, config, examples, counts, parent, tokenizer)
