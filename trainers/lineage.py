"""Where a stage starts from: the parent checkpoint, its manifest, and the base-model label.

A parent that is a LoRA adapter (an earlier stage trained with ``finetune: lora``) is
merged into its base first, once, into ``<output_dir>/parent-merged``: the new stage
trains on the parent's full weights, and with LoRA again, disabling the new adapter gives
back exactly the parent (DPO's reference model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError
from aimed.harness.manifest import read_manifest

from .base import StageConfig

MERGED_PARENT = "parent-merged"


@dataclass
class Parent:
    """The checkpoint a stage starts from.

    path: the parent as given (a resolved folder, or a hub id).
    manifest: its ``aimed_checkpoint.json``, or None (a base model).
    base_model: the base-model line's label, recorded in every checkpoint of the stage.
    stage: the parent's stage (``base`` for a checkpoint without a manifest).
    adapter_base: for an adapter parent, the folder its adapter applies on; else None.
    """

    path: str
    manifest: Optional[dict]
    base_model: str
    stage: str
    adapter_base: Optional[str] = None

    @property
    def is_adapter(self) -> bool:
        return self.adapter_base is not None


def resolve_parent(config: StageConfig) -> Parent:
    p = Path(config.model).expanduser()
    if not p.is_dir():  # a hub id (train_stage has checked that it names no local folder)
        return Parent(config.model, None, config.base_model or config.model.rstrip("/").split("/")[-1], "base")
    folder = p.resolve()
    manifest = read_manifest(folder)
    label = config.base_model or (manifest or {}).get("base_model") or folder.name
    adapter_base = None
    if (folder / "adapter_config.json").exists() and not (folder / "config.json").exists():
        adapter_base = (manifest or {}).get("base_folder") or _adapter_config_base(folder)
        if not adapter_base or not Path(adapter_base).is_dir():
            raise UserError(f"model {folder}: a LoRA adapter whose base model {adapter_base!r} is not a "
                            "folder here; merge it first (`aimed-eval merge`) or fix adapter_config.json")
    return Parent(str(folder), manifest, str(label), (manifest or {}).get("stage", "base"), adapter_base)


def _adapter_config_base(folder: Path) -> Optional[str]:
    try:
        return json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except ValueError:
        raise UserError(f"{folder / 'adapter_config.json'}: not valid JSON") from None


def full_weights_folder(parent: Parent, output_dir: Path, dtype: str = "auto") -> str:
    """The folder (or hub id) holding the parent's full weights: the parent itself, or, for
    an adapter, its merge into ``output_dir/parent-merged`` (written once, atomically)."""
    if not parent.is_adapter:
        return parent.path
    merged = Path(output_dir) / MERGED_PARENT
    if not (merged / "config.json").exists():
        from aimed.harness.merge import merge_adapter
        from aimed.harness.models.args import ModelArgs

        args = ModelArgs(model=parent.adapter_base, lora_model=[parent.path], only_cpu=True, dtype="float32")
        merge_adapter(args, merged, overwrite=True, dtype=None if dtype == "auto" else dtype)
    return str(merged.resolve())


def start_output(stage: str, config: StageConfig, parent: Parent) -> tuple[Path, str]:
    """Empty the stage's output folder and return it with the parent's full-weights folder.

    Call it only after the data has been read and checked: bad input must leave nothing
    behind (``train_stage`` has already refused a non-empty folder without overwrite)."""
    from .modeling import clear_output_dir, output_dir_of

    from .launch import is_main, main_process_first

    out = output_dir_of(stage, config, parent.base_model)
    with main_process_first():  # the others find the folder made and the parent merged
        if is_main():
            clear_output_dir(out)
        weights = full_weights_folder(parent, out)
    return out, weights


def tokenizer_folder(parent: Parent) -> str:
    """Where the parent's tokenizer is: its own folder, else (a bare adapter) its base's."""
    p = Path(parent.path)
    if any((p / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return parent.path
    return parent.adapter_base or parent.path
