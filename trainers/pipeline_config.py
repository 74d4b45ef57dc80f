"""``pipeline.yaml``: what ``aimed-eval pipeline`` runs, checked before anything is trained.

```yaml
output_root: pipeline_out       # checkpoints, runs, state and index go here
index_db: null                  # default: <output_root>/aimed_index.sqlite
base_models:                    # one line of stages a base model
  - name: qwen2-7b              # the label the leaderboard groups by
    model: Qwen/Qwen2-7B        # a checkpoint folder or a hub id
    config: {template_name: qwen}   # stage keys for every stage of this base model
stages: [pt, sft, rm, ppo, dpo] # any subset, in this order
defaults: {finetune: lora}      # stage keys for every stage
stage_config:                   # each stage's own keys (`aimed-eval train --stage S --help`)
  sft: {train_files: [sft.jsonl], max_steps: 200, save_steps: 50}
eval: {tasks: [medqa], limit: null, mode: null}
gate: gates.yaml                # a gate policy file, or the policy inline; default: built-in
stage_gates: {sft: {rules: {suite: {score: {min_gain: 0.01}}}}}   # per-stage policies
judge: {base_url: "http://127.0.0.1:8001/v1", api_key_env: JUDGE_KEY}  # optional: judged metrics too
scoring: {executor: local, workers: 1}   # optional: score checkpoints beside training (pipeline_scoring.py)
```

Relative paths are read from the YAML file's folder (train files also from
``$AIMED_DATA``). Unknown keys, a base model folder that is not there, and a stage list
out of the recipe's order or without the stage it needs are one-line errors naming the
file, the line and the key. What the recipe's order is, which stage needs which before it
and which are side stages, each stage's module says (its ``RECIPE``); nothing here names a
stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aimed.harness.errors import UserError, did_you_mean
from aimed.harness.gate_policy import DEFAULT, Policy, check_rank_by, load_policy, parse_policy
from aimed.harness.index_pg import is_pg_url
from aimed.harness.judge.config import JudgeConfig
from aimed.harness.judge.config import validate as validate_judge
from aimed.harness.verdicts import STATE_FILE

from .base import REWARD_KEY, StageRecipe
from .launcher import Launcher
from .pipeline_scoring import ScoringEntry

SET_BY_PIPELINE = ("model", "output_dir", "base_model", "overwrite", "eval_tasks", "eval_limit", "eval_mode",
                   "eval_db", "eval_contamination_data", "eval_judge", "eval_elsewhere")
PATH_KEYS = ("train_files", REWARD_KEY, "tokenizer_path")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BaseModelEntry(_Strict):
    name: str
    model: str
    config: dict[str, Any] = Field(default_factory=dict)


class EvalEntry(_Strict):
    tasks: Union[str, list[str]] = "demo"
    limit: Optional[int] = Field(default=None, ge=1)
    mode: Optional[str] = None


class PipelineFile(_Strict):
    output_root: str = "aimed_pipeline"
    index_db: Optional[str] = None
    base_models: list[BaseModelEntry] = Field(min_length=1)
    stages: list[str] = Field(min_length=1)
    defaults: dict[str, Any] = Field(default_factory=dict)
    stage_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    eval: EvalEntry = Field(default_factory=EvalEntry)
    gate: Union[str, dict, None] = None
    stage_gates: dict[str, Union[str, dict]] = Field(default_factory=dict)
    judge: Optional[dict[str, Any]] = None  # scores every checkpoint's open answers (docs/judge.md)
    launcher: Optional[Launcher] = None  # every stage as a distributed job (trainers/launcher.py)
    stage_launchers: dict[str, Launcher] = Field(default_factory=dict)
    scoring: ScoringEntry = Field(default_factory=ScoringEntry)  # where checkpoints are scored


@dataclass
class BaseModelSpec:
    name: str
    model: str                      # a resolved folder, or a hub id
    config: dict = field(default_factory=dict)


@dataclass
class PipelineConfig:
    path: Path
    output_root: Path
    index_db: Path
    base_models: list[BaseModelSpec]
    stages: list[str]
    defaults: dict
    stage_config: dict[str, dict]
    eval_tasks: list[str]
    eval_limit: Optional[int]
    eval_mode: Optional[str]
    policy: Policy
    stage_policies: dict[str, Policy]
    recipes: dict[str, StageRecipe]  # each listed stage's, from its module
    judge: Optional[JudgeConfig] = None
    launchers: dict[str, Launcher] = field(default_factory=dict)  # stage -> its launcher; others in-process
    scoring: ScoringEntry = field(default_factory=ScoringEntry)  # inline, or a pool/cluster beside training

    @property
    def state_file(self) -> Path:
        return self.output_root / STATE_FILE

    def policy_for(self, stage: str) -> Policy:
        """The stage's gate policy; its ``rank_by`` is the stage's own default (its recipe's)
        unless the policy names one."""
        policy = self.stage_policies.get(stage, self.policy)
        wanted = self.recipes[stage].rank_by
        if wanted and "rank_by" not in policy.model_fields_set and wanted != policy.rank_by:
            policy = policy.model_copy(update={"rank_by": wanted})  # keeps the policy's source
        return policy

    def stage_keys(self, base: BaseModelSpec, stage: str) -> dict:
        """The stage's config keys for this base model, before the pipeline adds the parent,
        the output folder and the eval settings: defaults < base model's < stage's."""
        return {**self.defaults, **base.config, **self.stage_config.get(stage, {})}

    def stage_hash(self, base: BaseModelSpec, stage: str) -> str:
        """What a finished stage's record must match to be reused on a rerun."""
        # a judge joins the eval settings only when there is one: older records still match
        judged = [self.judge.describe()] if self.judge else []
        what = {"keys": self.stage_keys(base, stage), "eval": [self.eval_tasks, self.eval_limit, self.eval_mode, *judged],
                "policy": self.policy_for(stage).model_dump(), "model": base.model}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _line_of(text: str, loc: tuple) -> str:
    """``:LINE`` of the YAML node at ``loc`` (keys and list indexes), or '' when not found."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return ""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            line, node = match[0][0].start_mark.line, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line
        else:
            break
    return "" if line is None else f":{line + 1}"


def _where(loc: tuple) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".") or "(top level)"


def read_pipeline_file(path: Path) -> tuple[PipelineFile, str]:
    import yaml

    if not path.is_file():
        raise UserError(f"--config {path}: no such file; give a pipeline.yaml (see trainers/demo_data/pipeline.yaml)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; give a pipeline.yaml (see trainers/demo_data/pipeline.yaml)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML "
                        f"({getattr(exc, 'problem', None) or exc}); fix the file") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: give a mapping with base_models, stages, stage_config, eval, gate")
    try:
        return PipelineFile.model_validate(data), text
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        at = f"{path}{_line_of(text, loc)}"
        if err["type"] == "extra_forbidden":
            model = {"base_models": BaseModelEntry, "eval": EvalEntry, "scoring": ScoringEntry}.get(
                loc[0] if len(loc) > 1 else "", PipelineFile)
            known = list(model.model_fields)
            raise UserError(f"{at}: unknown key '{loc[-1]}' at {_where(loc)}{did_you_mean(str(loc[-1]), known)}; "
                            f"known keys: {', '.join(known)}") from None
        if loc and loc[-1] in ("str", "dict[any,any]"):  # a union's branch: name the field instead
            loc = loc[:-1]
        if err["type"] == "value_error":  # a model's own check: its message says what to do
            raise UserError(f"{at}: {_where(loc)}: {err['ctx']['error']}") from None
        raise UserError(f"{at}: {_where(loc)}: {err['msg']} (got {err.get('input')!r})") from None


def _resolve(folder: Path, value: str) -> str:
    """A relative path from the YAML file's folder when something is there; else as given."""
    p = Path(value).expanduser()
    if not p.is_absolute() and (folder / p).exists():
        return str((folder / p).resolve())
    return str(p) if p.is_absolute() else value


def _resolve_paths(folder: Path, keys: dict) -> dict:
    out = dict(keys)
    for key in PATH_KEYS:
        if key in out and isinstance(out[key], str):
            out[key] = ",".join(_resolve(folder, v.strip()) for v in out[key].split(",")) if key == "train_files" \
                else _resolve(folder, out[key])
        elif key in out and isinstance(out[key], list):
            out[key] = [_resolve(folder, str(v)) for v in out[key]]
    return out


def _policy(value, folder: Path, where: str) -> Policy:
    if value is None:
        return DEFAULT
    if isinstance(value, str):
        return load_policy(Path(_resolve(folder, value)))
    return parse_policy(value, where)


def check_stages(stages: list[str], recipes: dict[str, StageRecipe], where: str, reward_given) -> None:
    """``stages`` are registered (``recipes``: every registered stage's, in the recipe's
    order), each once, in the recipe's order, each after the stages it needs;
    ``reward_given(stage)``: its reward model is set in the file, so it needs no side stage
    to train one."""
    known = list(recipes)
    for s in stages:
        if s not in known:
            raise UserError(f"{where}: unknown stage '{s}'{did_you_mean(s, known)}; known: {', '.join(known)}")
    if len(set(stages)) != len(stages):
        raise UserError(f"{where}: a stage is listed twice ({', '.join(stages)}); list each once")
    for i in range(1, len(stages)):
        if recipes[stages[i]].order < recipes[stages[i - 1]].order:
            raise UserError(f"{where}: '{stages[i]}' comes after '{stages[i - 1]}'; list the stages in the "
                            f"recipe's order: {' -> '.join(known)}")
    for i, s in enumerate(stages):
        recipe = recipes[s]
        for need in recipe.needs:
            gives_reward = recipe.needs_reward_model and need in recipes and recipes[need].side
            if gives_reward and reward_given(s):
                continue
            if need not in stages[:i]:
                extra = f" (or set stage_config.{s}.{REWARD_KEY})" if gives_reward else ""
                raise UserError(f"{where}: stage '{s}' needs its parent stage '{need}' before it{extra}; "
                                f"add '{need}' to the stages")


def check_installed(modules: tuple, extra: str, command: str) -> None:
    """The packages a command needs beyond the core install, named with the extra to install."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{command} needs {', '.join(missing)}: pip install \"aimed-eval[{extra}]\" "
                        f"(or pip install -e \".[{extra}]\" in a checkout)")


def load_pipeline(path: Path, *, output_root: Optional[Path] = None, stages: Optional[list[str]] = None,
                  only: Optional[list[str]] = None) -> PipelineConfig:
    """Read and check ``path``; ``output_root``/``stages``/``only`` (base model names) are the
    command line's overrides. Every stage's keys are checked against the stage's Config."""
    from aimed.harness.index import DB_NAME

    from .stages import check_parent, load_stage_config, stage_module, stage_names, stage_recipe, stage_recipes

    check_installed(("trl", "datasets", "accelerate"), "training", "aimed-eval pipeline")
    path = Path(path)
    raw, text = read_pipeline_file(path)
    folder = path.resolve().parent
    stage_list = stages or raw.stages
    where = f"{path}{_line_of(text, ('stages',))}: stages" if not stages else "--stages"
    known = stage_names()
    named = (("stages", stage_list), ("stage_config", raw.stage_config), ("stage_gates", raw.stage_gates))
    for section, names in named:
        for name in names:
            if name not in known:
                at = where if section == "stages" else f"{path}{_line_of(text, (section, name))}: {section}"
                raise UserError(f"{at}: unknown stage '{name}'{did_you_mean(name, known)}; known: {', '.join(known)}")
    for name in stage_list:
        try:
            stage_recipe(name)  # one that declares no recipe cannot be placed: said now
        except UserError as exc:
            raise UserError(f"{where}: {exc.message}") from None
    recipes = stage_recipes()
    check_stages(stage_list, recipes, where, lambda s: REWARD_KEY in raw.stage_config.get(s, {}))
    bases, seen = [], set()
    for i, b in enumerate(raw.base_models):
        at = f"{path}{_line_of(text, ('base_models', i, 'name'))}: base_models[{i}]"
        if not NAME.match(b.name) or b.name in seen:
            raise UserError(f"{at}.name {b.name!r}: give a unique name of letters, digits, '.', '_' or '-'")
        seen.add(b.name)
        model = _resolve(folder, b.model)
        local = folder / Path(b.model).expanduser()
        if not Path(model).is_absolute() and local.parent != folder and local.parent.is_dir():
            model = str(local)  # under a folder that is there: a missing folder, not a hub id
        try:
            check_parent(model)
        except UserError as exc:
            reason = exc.message.removeprefix("model ").split(";")[0]
            raise UserError(f"{path}{_line_of(text, ('base_models', i, 'model'))}: base_models[{i}].model: "
                            f"{reason}; give a checkpoint folder (relative paths are read from the YAML "
                            "file's folder) or a hub id like org/name") from None
        if only is None or b.name in only:
            bases.append(BaseModelSpec(b.name, model, _resolve_paths(folder, b.config)))
    if only:
        unknown = sorted(set(only) - seen)
        if unknown:
            raise UserError(f"--base_models {unknown[0]}: not in {path}{did_you_mean(unknown[0], sorted(seen))}; "
                            f"known: {', '.join(sorted(seen))}")
    root = Path(output_root) if output_root else Path(_resolve(folder, raw.output_root)) \
        if Path(raw.output_root).is_absolute() else folder / raw.output_root
    tasks = raw.eval.tasks if isinstance(raw.eval.tasks, list) else [t.strip() for t in raw.eval.tasks.split(",")]
    config = PipelineConfig(
        path=path, output_root=root.resolve(),
        index_db=(raw.index_db if is_pg_url(raw.index_db) else Path(_resolve(folder, raw.index_db))) if raw.index_db
        else root.resolve() / DB_NAME,
        base_models=bases, stages=stage_list, defaults=_resolve_paths(folder, raw.defaults),
        stage_config={s: _resolve_paths(folder, k) for s, k in raw.stage_config.items()},
        eval_tasks=[t for t in tasks if t], eval_limit=raw.eval.limit, eval_mode=raw.eval.mode,
        policy=_policy(raw.gate, folder, f"{path}: gate"),
        stage_policies={s: _policy(p, folder, f"{path}: stage_gates.{s}") for s, p in raw.stage_gates.items()},
        recipes={s: recipes[s] for s in stage_list},
        judge=validate_judge(raw.judge, f"{path}: judge") if raw.judge is not None else None,
        launchers=_launchers(raw, stage_list, path), scoring=raw.scoring)
    # Every stage's keys, for every base model, against the stage's own Config: a typo
    # fails now, not after an hour of the stages before it.
    index = {b.name: i for i, b in enumerate(raw.base_models)}
    for base in config.base_models:
        for stage in config.stages:
            keys = config.stage_keys(base, stage)
            fields = {f.name for f in dataclasses.fields(stage_module(stage).Config)}
            for key in keys:
                src = ("stage_config", stage, key) if key in config.stage_config.get(stage, {}) else \
                    ("defaults", key) if key in config.defaults else ("base_models", index[base.name], "config", key)
                if key not in fields:
                    raise UserError(f"{path}{_line_of(text, src)}: {'.'.join(map(str, src))}: unknown key "
                                    f"'{key}' for stage {stage}{did_you_mean(key, sorted(fields))}")
                if key in SET_BY_PIPELINE:
                    raise UserError(f"{path}{_line_of(text, src)}: {'.'.join(map(str, src))}: '{key}' is set by "
                                    "the pipeline (parent checkpoint, output folder, eval settings); remove it")
            try:
                load_stage_config(stage, None, {**keys, "model": base.model})
            except UserError as exc:
                raise UserError(f"{path}: stage_config.{stage} (base model {base.name}): {exc.message}") from None
    if not config.eval_tasks:
        raise UserError(f"{path}: eval.tasks is empty; the gate needs scores: name tasks or groups")
    from aimed.harness.taskregistry import group_tree, resolve_tasks

    try:
        tasks = resolve_tasks(config.eval_tasks)
        metrics = {t.name: set(t.spec.metrics) | _judged(config, t, path) for t in tasks}
        for group, members in group_tree(config.eval_tasks).items():
            metrics[group] = {"score"} | set.intersection(*(metrics.get(m, {"score"}) for m in members))
    except UserError as exc:
        raise UserError(f"{path}{_line_of(text, ('eval', 'tasks'))}: eval.tasks: {exc.message}") from None
    metrics["suite"] = {"score"}
    gated = [config.policy_for(s) for s in config.stages if not config.recipes[s].side]
    for policy in [config.policy, *config.stage_policies.values(), *gated]:
        check_policy_tasks(policy, metrics)
    return config


def _launchers(raw: PipelineFile, stages: list[str], path: Path) -> dict[str, Launcher]:
    unknown = sorted(set(raw.stage_launchers) - set(stages))
    if unknown:
        raise UserError(f"{path}: stage_launchers.{unknown[0]}: not a stage of this pipeline "
                        f"({', '.join(stages)}); remove it or add the stage")
    every = {s: raw.launcher for s in stages if raw.launcher is not None}
    return {**every, **raw.stage_launchers}


def _judged(config: PipelineConfig, task, path: Path) -> set:
    """The judge metrics a task gets when the pipeline has a judge (its rubric checked now)."""
    if config.judge is None:
        return set()
    from aimed.harness.judge.metrics import rubric_metric_names
    from aimed.harness.judge.session import task_rubric

    try:
        rubric = task_rubric(config.judge, task.spec, task.spec_path.parent)
    except UserError as exc:
        raise UserError(f"{path}: judge: {exc.message}") from None
    return set(rubric_metric_names([c.name for c in rubric.criteria], bool(rubric.safety))) if rubric else set()


def check_policy_tasks(policy: Policy, metrics: dict[str, set]) -> None:
    """A policy's tasks (and its rank_by row) must be among the scored ones: found now,
    not after a stage's training."""
    names = sorted(metrics)
    for task in [t for t in policy.rules if t != "*"]:
        if task not in metrics:
            raise UserError(f"{policy.source}: names task '{task}', which eval.tasks does not score"
                            f"{did_you_mean(task, names)}; scored: {', '.join(names)}")
    check_rank_by(policy, metrics, policy.source, "eval.tasks does not score")
