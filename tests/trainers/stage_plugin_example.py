"""A stage from outside the package, as a team would add one (ORPO, KTO, ...): a module with
NAME, Config and train, named by an ``aimed.stages`` entry point. This one is SFT on a
harness task's items with its own config key."""

from dataclasses import dataclass

from aimed.trainers import sft
from aimed.trainers.lineage import resolve_parent, tokenizer_folder
from aimed.trainers.modeling import load_tokenizer

NAME = "mcq-sft"


@dataclass
class Config(sft.Config):
    task: str = "demo_mcq"


def train(config):
    config.train_tasks = [config.task]
    parent = resolve_parent(config)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    examples, counts = sft.load_examples(config, tokenizer)
    return sft.train_on_tokens(NAME, config, examples, counts, parent, tokenizer)
