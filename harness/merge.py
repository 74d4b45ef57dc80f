"""Merge a LoRA adapter into its base: a full checkpoint that loads without peft.

The base is loaded by the same code as ``aimed-eval run`` (so ``--resize_emb`` resizes
the embeddings to the adapter's tokenizer first, as the original AiMed merge script did),
the adapter's weights are folded in with peft's ``merge_and_unload``, and the result is
written as safetensors with the tokenizer and an ``aimed_checkpoint.json`` whose parent
is the adapter. Everything is written to a temporary folder beside ``out_dir`` and
renamed into place at the end, so a failed merge leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

from .errors import UserError
from .manifest import MANIFEST, package_versions, read_manifest
from .models.args import ModelArgs
from .owned import check_target, replace_folder, write_marker


def merge_adapter(args: ModelArgs, out_dir: Path, overwrite: bool = False,
                  dtype: Optional[str] = None) -> Path:
    """Write base + ``args.lora_model[0]`` merged into ``out_dir``; returns it."""
    if len(args.lora_model) != 1:
        raise UserError("--lora_model: give exactly one adapter folder to merge")
    check_target(Path(out_dir), what="--out", kind="merge", overwrite=overwrite)
    out_dir = Path(out_dir).expanduser().resolve()
    from .models.loading import load_model

    model, tokenizer, info = load_model(args)
    merged = model.merge_and_unload()
    if dtype and dtype != "auto":
        import torch

        merged = merged.to(getattr(torch, dtype))
    adapter = Path(info.adapter_folders[0])
    parent_manifest = read_manifest(adapter) or {}
    base_manifest = read_manifest(Path(info.model_folder)) or {}
    manifest = {
        **parent_manifest,
        "kind": "merged",
        "stage": parent_manifest.get("stage", "unknown"),
        "base_model": parent_manifest.get("base_model") or base_manifest.get("base_model") or args.model,
        "parent": str(adapter),
        "merged_from": {"base": info.model_folder, "adapter": str(adapter),
                        "resize_emb": args.resize_emb, "vocab_size": len(tokenizer)},
        "versions": package_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        write_marker(tmp, "merge")
        replace_folder(tmp, out_dir)
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot write the merged checkpoint ({exc.strerror or exc}); "
                        "free some space or choose a folder you can write to (nothing was left behind)") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
