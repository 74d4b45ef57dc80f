"""A stage from outside the package, as a team would add one (ORPO, KTO, ...): a module with
NAME, Config, train and RECIPE, named by an ``aimed.stages`` entry point. This one is SFT on
a harness task's items with its own config key; in a pipeline it stands where SFT does and
its checkpoints are ranked by the task's accuracy unless the gate policy says otherwise."""

from dataclasses import dataclass

from aimed.trainers import sft
from aimed.trainers.base import StageRecipe
from aimed.trainers.lineage import resolve_parent, tokenizer_folder
from aimed.trainers.modeling import load_tokenizer

NAME = "mcq-sft"
RECIPE = StageRecipe(order=1, rank_by="demo_mcq/acc")


@dataclass
class Config(sft.Config):
    task: str = "demo_mcq"


def train(config):
    config.train_tasks = [config.task]
    parent = resolve_parent(config)
    tokenizer = load_tokenizer(tokenizer_folder(parent))
    examples, counts = sft.load_examples(config, tokenizer)
    return sft.train_on_tokens(NAME, config, examples, counts, parent, tokenizer)
