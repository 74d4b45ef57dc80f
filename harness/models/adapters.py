"""Several LoRA adapters of one base in one run: which runs, which base, and swapping adapters.

Two ways to name them (``aimed-eval run``):

- ``--model BASE --lora_model a,b,c``: each adapter is scored on its own on BASE (not
  stacked); with one adapter this is the plain base + adapter run.
- ``--model a,b,c`` where each is an adapter folder (``adapter_config.json``): the base is
  the one the adapters name (``base_folder`` in a trainer's ``aimed_checkpoint.json``, else
  peft's ``base_model_name_or_path``), and they must all name the same one.

The base is loaded once and the adapters are swapped in turn (peft's ``load_adapter`` /
``set_adapter``, the previous adapter deleted, so one adapter is in memory at a time).
Each adapter gets its own run: its own fingerprint (the response cache never mixes them),
run folder and index record.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..errors import UserError, read_json
from .args import ModelArgs
from .loading import HUB_ID, _check_checkpoint, local_folder

ADAPTER_CONFIG = "adapter_config.json"
MANIFEST = "aimed_checkpoint.json"
_SERIAL = itertools.count(1)  # peft adapter names must be unique within a model


def _read_json(path: Path) -> dict:
    data = read_json(path, "the checkpoint is damaged")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object; the checkpoint is damaged")
    return data


def declared_base(folder: Path) -> Optional[str]:
    """The base an adapter folder says it applies on, or None when it says nothing."""
    if (folder / MANIFEST).exists() and (base := _read_json(folder / MANIFEST).get("base_folder")):
        return str(base)
    if (folder / ADAPTER_CONFIG).exists():
        return _read_json(folder / ADAPTER_CONFIG).get("base_model_name_or_path") or None
    return None


def _base_key(name: str) -> str:
    """What two declared bases are compared by: a resolved path where there is one."""
    p = Path(name).expanduser()
    return str(p.resolve()) if p.exists() else name.rstrip("/")


def is_adapter_folder(name: str) -> bool:
    p = Path(name).expanduser()
    return p.is_dir() and (p / ADAPTER_CONFIG).exists() and not (p / "config.json").exists()


def plan_runs(args: ModelArgs) -> list[ModelArgs]:
    """One ModelArgs a run: the base with one adapter each (or ``[args]`` for a plain run)."""
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    if len(models) > 1 or (models and is_adapter_folder(models[0])):
        if args.lora_model:
            raise UserError("--model lists adapter folders and --lora_model names adapters too; give either "
                            "--model BASE --lora_model a,b,c or --model a,b,c")
        adapters = _adapter_folders(models)
        base = _common_base(adapters, None)
        if base is None:
            raise UserError(f"--model {adapters[0]}: its {ADAPTER_CONFIG} names no base model; "
                            "give --model BASE --lora_model a,b,c")
        return [replace(args, model=base, lora_model=[str(a)]) for a in adapters]
    if len(args.lora_model) <= 1:
        return [args]
    if len(set(args.lora_model)) != len(args.lora_model):
        raise UserError(f"--lora_model {','.join(args.lora_model)}: an adapter is listed twice; list each once")
    folders = [local_folder(a, "--lora_model") for a in args.lora_model]
    for f in folders:
        if f is not None:
            _check_checkpoint(f, "--lora_model", ADAPTER_CONFIG)
    _common_base([f for f in folders if f is not None], args.model)
    return [replace(args, lora_model=[a]) for a in args.lora_model]


def _adapter_folders(models: list[str]) -> list[Path]:
    folders = []
    for m in models:
        folder = local_folder(m, "--model")
        if folder is None or not (folder / ADAPTER_CONFIG).exists():
            raise UserError(f"--model {m}: not a LoRA adapter folder (no {ADAPTER_CONFIG}); several --model "
                            "entries must be adapters of one base: score full checkpoints one run each")
        _check_checkpoint(folder, "--model", ADAPTER_CONFIG)
        folders.append(folder)
    if len(set(folders)) != len(folders):
        raise UserError(f"--model {','.join(models)}: an adapter is listed twice; list each once")
    return folders


def _common_base(folders: list[Path], given: Optional[str]) -> Optional[str]:
    """The base every adapter names (a UserError when two differ); checked to exist when it
    has to be loaded from what the adapters say (``given`` is None)."""
    named = [(f, b) for f in folders if (b := declared_base(f))]
    if not named:
        return None
    first_folder, first = named[0]
    for folder, base in named[1:]:
        if _base_key(base) != _base_key(first):
            raise UserError(f"{folder}: an adapter of {base}, but {first_folder} is an adapter of {first}; "
                            "adapters scored in one run must share one base: run each base on its own")
    if given is None:
        p = Path(first).expanduser()
        if not p.is_dir() and not (HUB_ID.match(first) and not first.startswith((".", "/", "~"))):
            raise UserError(f"{first_folder}: its base {first} is not here; give the base with "
                            f"--model BASE --lora_model {','.join(str(f) for f in folders)}")
        return str(p.resolve()) if p.is_dir() else first
    return given


def run_names(runs: list[ModelArgs]) -> list[str]:
    """A subfolder name a run: the adapter folder's name, with its parent's when two clash."""
    paths = [Path(r.lora_model[0].rstrip("/")) if r.lora_model else Path(r.model.rstrip("/")) for r in runs]
    names = [p.name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}-{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n}-{i + 1}" for i, n in enumerate(names)]
    return names


def swap_adapter(model, folder: str) -> str:
    """Make the adapter in ``folder`` the active one of the peft ``model`` and drop the
    others (one adapter in memory at a time); returns the folder it loaded."""
    path = local_folder(folder, "--lora_model")
    if path is None:
        from .loading import snapshot_folder

        path = snapshot_folder(folder, None)
    _check_checkpoint(path, "--lora_model", ADAPTER_CONFIG)
    previous = list(model.peft_config)
    name = f"adapter_{next(_SERIAL)}"
    try:
        model.load_adapter(str(path), adapter_name=name)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"--lora_model {path}: does not fit the base model ({str(exc).splitlines()[0][:160]}); "
                        "adapters scored in one run must share one base") from None
    model.set_adapter(name, inference_mode=True)
    for old in previous:
        model.delete_adapter(old)
    model.eval()
    return str(path)
