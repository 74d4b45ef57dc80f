"""The stage registry, config loading, and ``train_stage``: the one public way to train.

Stages are found through the ``aimed.stages`` entry point group (pyproject.toml), so a team
adds ORPO or KTO with one module and one entry-point line; each module says where it stands
in the recipe (``RECIPE``, :class:`aimed.trainers.base.StageRecipe`), which is all the
pipeline knows of a stage. ``load_stage_config`` merges
defaults < YAML < command-line flags and rejects unknown keys by name. Nothing heavy is
imported here: the CLI imports this module at start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import types
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Optional

from aimed.harness.errors import UserError, did_you_mean
from aimed.harness.owned import check_target

from .base import DTYPES, FINETUNE_KINDS, StageConfig, StageRecipe, StageResult

GROUP = "aimed.stages"


def stage_recipes() -> dict[str, StageRecipe]:
    """Every registered stage that declares its recipe, in the recipe's order (by name
    within one order)."""
    names = {ep.name for ep in entry_points(group=GROUP)}
    found = {n: getattr(stage_module(n), "RECIPE", None) for n in names}
    placed = sorted((r.order, n) for n, r in found.items() if isinstance(r, StageRecipe))
    return {n: found[n] for _, n in placed}


def stage_names() -> list[str]:
    """Registered stages in the recipe's order, then those that declare no recipe, by name."""
    placed = list(stage_recipes())
    return placed + sorted({ep.name for ep in entry_points(group=GROUP)} - set(placed))


def stage_recipe(stage: str) -> StageRecipe:
    """The stage's place in the recipe, as its module declares it; a UserError for an
    unknown stage or one that declares none."""
    module = stage_module(stage)
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, StageRecipe):
        raise UserError(f"stage {stage} ({module.__name__}): declares no RECIPE, so it cannot take part in a "
                        "pipeline; add RECIPE = StageRecipe(order=...) (aimed.trainers.base) to its module")
    return recipe


def stage_module(stage: str) -> types.ModuleType:
    """The module of ``stage`` (``NAME``, ``Config``, ``train``); a UserError when unknown."""
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    if stage not in eps:
        raise UserError(f"--stage {stage}: unknown stage{did_you_mean(stage, list(eps))}; "
                        f"known: {', '.join(stage_names())}")
    return importlib.import_module(eps[stage].value)


def load_stage_config(stage: str, yaml_path: Optional[Path] = None,
                      overrides: Optional[dict] = None) -> StageConfig:
    """The stage's Config from its defaults, then ``yaml_path``, then ``overrides``.

    YAML values keep their YAML types; override values may be strings (from the command
    line) and are converted to each field's type. An unknown key, a value of the wrong type,
    or a bad choice is a UserError naming the key and where it came from."""
    cls = stage_module(stage).Config
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(_read_yaml(Path(yaml_path), cls))
    for key, value in (overrides or {}).items():
        values[key] = _coerce(cls, key, value, f"--{key}")
    try:
        config = cls(**values)
    except TypeError as exc:  # a required field of a stage's own Config left out
        raise UserError(f"--stage {stage}: {exc}") from None
    check_config(config, stage)
    return config


def _read_yaml(path: Path, cls) -> dict:
    import yaml

    if not path.is_file():
        raise UserError(f"--config {path}: no such file; give the stage's YAML config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; give the stage's YAML config") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: give a mapping of config keys to values, not {type(data).__name__}")
    return {k: _coerce(cls, str(k), v, f"{path}: key {k!r}") for k, v in data.items()}


def _coerce(cls, key: str, value: Any, where: str) -> Any:
    """``value`` as the type of field ``key`` of ``cls``; strings are parsed (CLI flags)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise UserError(f"{where}: unknown config key {key!r}{did_you_mean(key, list(fields))}; "
                        f"see `aimed-eval train --stage ... --help` for the keys")
    hint = typing.get_type_hints(cls)[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise UserError(f"{where}: give a value for {key!r}")
    origin = typing.get_origin(hint)
    try:
        if origin is list:
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(v).strip() for v in items if str(v).strip()]
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {value!r} is not a {getattr(hint, '__name__', hint)} "
                        f"(key {key!r})") from None
    return value


def check_config(config: StageConfig, stage: str) -> None:
    """Choices and ranges that do not depend on files (those come in ``train_stage``)."""
    if not config.model:
        raise UserError(f"--stage {stage}: give `model`, the checkpoint this stage starts from")
    if config.finetune not in FINETUNE_KINDS:
        raise UserError(f"finetune {config.finetune!r}: use one of {', '.join(FINETUNE_KINDS)}")
    if config.dtype not in DTYPES:
        raise UserError(f"dtype {config.dtype!r}: use one of {', '.join(DTYPES)}")
    for key in ("per_device_train_batch_size", "gradient_accumulation_steps", "save_steps",
                "logging_steps", "max_length", "lora_r"):
        if getattr(config, key) < 1:
            raise UserError(f"{key} {getattr(config, key)}: give a positive number")
    if config.max_steps == 0 or config.max_steps < -1:
        raise UserError(f"max_steps {config.max_steps}: give a positive number, or -1 for num_train_epochs")
    if config.max_samples is not None and config.max_samples < 1:
        raise UserError(f"max_samples {config.max_samples}: give a positive number, or leave it out for all")
    if config.eval_limit is not None and config.eval_limit < 1:
        raise UserError(f"eval_limit {config.eval_limit}: give a positive number, or leave it out for all")
    if config.learning_rate <= 0:
        raise UserError(f"learning_rate {config.learning_rate}: give a positive number")
    from aimed.harness.taskspec import MODES
    from aimed.harness.templates import template_names

    if config.template_name not in template_names():
        raise UserError(f"template_name {config.template_name!r}: unknown"
                        f"{did_you_mean(config.template_name, template_names())}; use one of {', '.join(template_names())}")
    if config.eval_mode is not None and config.eval_mode not in MODES:
        raise UserError(f"eval_mode {config.eval_mode!r}: use one of {', '.join(MODES)}")


def train_stage(stage: str, config: StageConfig) -> StageResult:
    """Run ``stage`` with ``config``: checks the parent checkpoint, the data files, the eval
    tasks and the output folder before anything is written, then trains; every checkpoint
    it saves gets its manifest and its scores (see :mod:`aimed.trainers.checkpoints`)."""
    module = stage_module(stage)
    if not isinstance(config, module.Config):
        raise TypeError(f"train_stage({stage!r}) needs a {module.Config.__name__}, not {type(config).__name__}")
    check_config(config, stage)
    check_parent(config.model)
    if config.eval_tasks:
        from aimed.harness.taskregistry import resolve_tasks

        for task in resolve_tasks(list(config.eval_tasks)):  # an unknown task or missing data fails
            task.samples()                                     # now, not at every checkpoint
    from .lineage import resolve_parent
    from .modeling import output_dir_of

    parent = resolve_parent(config)
    out = output_dir_of(stage, config, parent.base_model)
    if _inside(Path(parent.path), out.expanduser().resolve()):
        raise UserError(f"output_dir {out}: holds the parent checkpoint; give a folder of its own for this stage")
    from aimed.harness.owned import folder_lock

    from .launch import is_main

    main = is_main()  # under torchrun / accelerate launch the main process checks and writes the folder
    if main:
        check_target(out, what="output_dir", kind="stage", overwrite=config.overwrite, how="set overwrite: true")
    lock = folder_lock(out, "output_dir") if main else contextlib.nullcontext()
    try:
        with lock:  # a second stage aimed at this folder meanwhile is refused
            return module.train(config)
    except UserError:
        if main:
            _drop_unfinished(out)
        raise
    except Exception as exc:
        reason = disk_fault(exc)
        if reason is None:
            raise
        if main:
            _drop_unfinished(out)
        raise UserError(f"output_dir {out}: cannot write the stage's checkpoints ({reason}); free some space "
                        "or choose a folder you can write to (checkpoints finished before are kept)") from None


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.expanduser().resolve().relative_to(folder)
        return True
    except ValueError:
        return False


def disk_fault(exc: BaseException) -> str | None:
    """"No space left on device" or "Read-only file system" when ``exc`` is one, however the
    library that met it wraps it (safetensors raises its own error type), else None."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        return exc.strerror
    text = str(exc)
    for known in ("No space left on device", "Read-only file system", "Disk quota exceeded"):
        if known in text:
            return known
    return None


def _drop_unfinished(out: Path) -> None:
    """After bad input or a full disk found mid-way (e.g. no example fits max_length once the
    trainer has prepared the data), leave no half-made stage folder: remove it unless a
    checkpoint in it was finished (has its manifest); unfinished checkpoints go either way."""
    import shutil

    from aimed.harness.manifest import MANIFEST

    if not out.is_dir():
        return
    if not any(out.glob(f"checkpoint-*/{MANIFEST}")):
        shutil.rmtree(out, ignore_errors=True)
        return
    for folder in out.glob("checkpoint-*"):
        if not (folder / MANIFEST).exists():
            shutil.rmtree(folder, ignore_errors=True)


def check_parent(model: str) -> None:
    """The parent checkpoint exists: a folder with config.json or adapter_config.json, or a
    hub id (``org/name``) that names no local folder."""
    from aimed.harness.models.loading import HUB_ID

    p = Path(model).expanduser()
    if p.is_dir():
        if not ((p / "config.json").exists() or (p / "adapter_config.json").exists()):
            raise UserError(f"model {model}: not a checkpoint folder (no config.json or adapter_config.json)")
        return
    if p.exists():
        raise UserError(f"model {model}: is a file; give the parent checkpoint's folder")
    looks_local = model.startswith((".", "/", "~")) or not HUB_ID.match(model) or p.parent.exists() \
        and str(p.parent) not in ("", ".")
    if looks_local:
        raise UserError(f"model {model}: no such checkpoint folder; train the parent stage first "
                        "or give an existing checkpoint (or a hub id like org/name)")


def resolve_data_file(name: str) -> Path:
    """A data file as given, else relative to ``$AIMED_DATA``; a UserError when neither exists."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    data = os.environ.get("AIMED_DATA")
    if data and not p.is_absolute() and (Path(data) / p).is_file():
        return Path(data) / p
    where = f" (nor under AIMED_DATA={data})" if data else ""
    raise UserError(f"train_files: {name}: no such file{where}; give a data file's path")
