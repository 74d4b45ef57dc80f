"""Training stages (PT / SFT / RM / PPO / DPO) on trl + peft; each emits scored checkpoints.

    from aimed.trainers import load_stage_config, train_stage
    config = load_stage_config("sft", Path("sft.yaml"), {"max_steps": "50"})
    result = train_stage("sft", config)   # StageResult: checkpoints, final, train_metrics, eval_runs

A stage is one module named by an ``aimed.stages`` entry point (see ``base.py``); its
``RECIPE`` (a :class:`StageRecipe`) places it in ``aimed-eval pipeline``.
Importing this package loads nothing heavy: torch and trl load when a stage runs.
"""

from .base import StageConfig, StageRecipe, StageResult
from .stages import load_stage_config, stage_module, stage_names, stage_recipe, stage_recipes, train_stage

__all__ = ["StageConfig", "StageRecipe", "StageResult", "load_stage_config", "stage_module", "stage_names",
           "stage_recipe", "stage_recipes", "train_stage"]
