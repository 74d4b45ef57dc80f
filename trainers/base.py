"""What every training stage shares: its config fields, its result, and the stage contract.

A stage is one module (``trainers/sft.py``, ...) named by an ``aimed.stages`` entry point
in pyproject.toml. It exposes

- ``NAME``: the stage's name (``"sft"``), the one recorded in every checkpoint manifest;
- ``Config``: a dataclass subclassing :class:`StageConfig` with the stage's own fields;
- ``train(config) -> StageResult``: trains, saves checkpoints, and lets the harness score
  each one as it is saved (:mod:`aimed.trainers.checkpoints`);
- ``RECIPE``: a :class:`StageRecipe`, the stage's place in ``aimed-eval pipeline``'s
  recipe (a stage without one can be trained alone, but not in a pipeline).

``aimed.trainers.stages.train_stage`` is the one entry point callers use; it validates the
config and the parent checkpoint before the stage module runs. This module imports
nothing heavy, because the CLI imports it at start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

FINETUNE_KINDS = ("lora", "full", "qlora")
REWARD_KEY = "reward_model"  # the config key of a stage that needs the reward model's folder
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class StageRecipe:
    """Where a stage stands in the recipe; the pipeline reads these and nothing else.

    order: its place, PT 0 → SFT 1 → RM 2 → PPO/RLOO/GRPO 3 → DPO 4; a pipeline lists its
        stages in this order, and stages of one order are alternatives (any of them, once).
    needs: the stages that must come before it in a pipeline (``ppo``: ``sft`` and ``rm``).
    needs_reward_model: its config takes ``reward_model`` (the ``rm`` stage's checkpoint):
        the pipeline fills it in, and ``rm`` may be left out of ``needs`` when it is given.
    side: it trains from the line's tip but does not move it (``rm``: its last checkpoint
        becomes the reward model); it is not scored on the eval tasks nor gated.
    rank_by: the row the gate ranks this stage's checkpoints by when the stage's policy
        names none (``task/metric``); None: the policy's default, the suite score.
    """

    order: int
    needs: tuple[str, ...] = ()
    needs_reward_model: bool = False
    side: bool = False
    rank_by: Optional[str] = None


@dataclass
class StageConfig:
    """Fields common to every stage. Defaults < YAML < command-line flags.

    Model:
        model: the checkpoint this stage starts from: a folder (a full checkpoint, or a LoRA
            adapter checkpoint of an earlier stage, merged in first) or a hub id. Required.
        base_model: label of the base-model line (``tiny-llama``, ``qwen2-7b``); taken from
            the parent's ``aimed_checkpoint.json`` when absent, else the parent folder's name.
        output_dir: where the stage's ``checkpoint-<step>`` folders go (default
            ``aimed_train/<base_model>/<stage>``).
        overwrite: replace an existing, non-empty ``output_dir``.
        template_name: chat template of the harness registry (``raw``, ``vicuna``, ``qwen``,
            ..., ``tokenizer`` for the tokenizer's own); used for training prompts and for
            scoring the checkpoints.
        dtype: ``auto`` (bf16/fp16 on a GPU, fp32 on the CPU), ``float32``, ``bfloat16``,
            ``float16``.
        only_cpu: train on the CPU even when a GPU is there.

    Fine-tuning:
        finetune: ``lora`` (peft adapter; checkpoints are adapters), ``full`` (all weights),
            ``qlora`` (4-bit base + LoRA; needs CUDA and bitsandbytes).
        lora_r, lora_alpha, lora_dropout: the LoRA adapter's rank, scale and dropout.
        lora_target_modules: ``all-linear`` or comma-separated module names
            (``q_proj,v_proj``).

    Optimisation:
        learning_rate, lr_scheduler_type (transformers' names: ``linear``, ``cosine``,
        ``constant``, ...), warmup_steps, max_steps (-1: run ``num_train_epochs``), num_train_epochs,
        per_device_train_batch_size, gradient_accumulation_steps, seed.
        save_steps: save (and score) a checkpoint every N optimizer steps; the last step is
            always saved.
        logging_steps: log the loss every N steps (the first step is always logged).
        print_logs: print each logged step's figures (loss, learning rate, ...). The
            pipeline turns it off unless a stage's keys set it: it prints every stage's
            first -> last figures instead.
        gradient_checkpointing: recompute activations in the backward pass (trl's default:
            less memory, about a third more compute).

    Data:
        train_files: data files (a YAML list, or comma-separated on the command line);
            relative paths are read from ``$AIMED_DATA`` when not found as given.
        max_samples: use at most this many examples of each file (None: all).
        max_length: longest training sequence in tokens (``pt``: the packed block size).

    Scoring each checkpoint:
        eval_tasks: tasks or groups the harness scores each saved checkpoint on (a list, or
            comma-separated; empty: none). Default ``demo``.
        eval_limit: score only the first N items of each task.
        eval_mode: ``loglikelihood`` | ``cloze`` | ``generate`` (None: each task's default).
        eval_db: the results index the runs are recorded in (default as ``aimed-eval
            leaderboard`` reads: ``$AIMED_DB``, else ``aimed_runs/aimed_index.sqlite``).
        eval_contamination_data: training files the checkpoint was trained on (the pipeline
            gives the line's, this stage's included): each scored item's overlap with them is
            recorded and every metric is reported on the clean subset too (``_clean``).
        eval_judge: a judge that scores each checkpoint's open answers with the tasks'
            rubrics (the keys of a judge config: ``base_url``, ``model``, ``api_key_env``, ...;
            see docs/judge.md). None: no judge.
        eval_elsewhere: the checkpoints are scored by someone else (a pipeline's scoring
            executor, which watches for their manifests): the stage writes the manifests and
            scores nothing itself, so training never waits for an evaluation.
    """

    model: str = ""
    base_model: Optional[str] = None
    output_dir: Optional[str] = None
    overwrite: bool = False
    template_name: str = "raw"
    dtype: str = "auto"
    only_cpu: bool = False

    finetune: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: str = "all-linear"

    learning_rate: float = 2e-4
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    max_steps: int = -1
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    seed: int = 42
    save_steps: int = 500
    logging_steps: int = 10
    print_logs: bool = True
    gradient_checkpointing: bool = True

    train_files: list[str] = field(default_factory=list)
    max_samples: Optional[int] = None
    max_length: int = 512

    eval_tasks: list[str] = field(default_factory=lambda: ["demo"])
    eval_limit: Optional[int] = None
    eval_mode: Optional[str] = None
    eval_db: Optional[str] = None
    eval_contamination_data: list[str] = field(default_factory=list)
    eval_judge: Optional[dict] = None
    eval_elsewhere: bool = False


@dataclass
class StageResult:
    """What a finished stage hands back.

    stage: the stage's name.
    checkpoints: every saved checkpoint folder, in step order, the last included.
    final: the last checkpoint (the model at the end of training).
    train_metrics: figures of the training run: ``first_loss``, ``last_loss``, ``steps``,
        and the stage's own (``rm``: pair accuracy before/after; ``dpo``: reward margins).
    eval_runs: checkpoint folder -> its run folder, or None where scoring failed (a
        warning was printed) or no eval_tasks were set.
    scores: checkpoint folder -> its headline figures (``demo_mcq/acc``: value; for a
        reward model its pair accuracy), for printing and the pipeline's choice.
    """

    stage: str
    checkpoints: list[Path]
    final: Path
    train_metrics: dict = field(default_factory=dict)
    eval_runs: dict = field(default_factory=dict)  # dict[Path, Optional[Path]]
    scores: dict = field(default_factory=dict)  # dict[Path, dict[str, float]]
