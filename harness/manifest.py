"""The checkpoint manifest (``aimed_checkpoint.json``) and the package versions recorded
beside every run and every checkpoint.

A trainer writes the manifest into each checkpoint it emits (stage, base model, parent,
adapter or merged, training data hashes, config, versions); a run reads it back to record
where the checkpoint came from."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Iterable, Optional

from .errors import read_json

MANIFEST = "aimed_checkpoint.json"
# what changes a score; training adds its own engines (trainers/checkpoints.py)
SCORING_PACKAGES = ("aimed-eval", "torch", "transformers", "peft", "tokenizers", "safetensors", "rouge-chinese",
                    "jieba")


def package_versions(names: Iterable[str] = SCORING_PACKAGES) -> dict[str, Optional[str]]:
    """Installed version of each package (None: not installed)."""
    out: dict[str, Optional[str]] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def read_manifest(folder: Path) -> Optional[dict]:
    """The checkpoint's manifest; None when it has none."""
    f = Path(folder) / MANIFEST
    if not f.exists():
        return None
    return read_json(f, "fix or remove the manifest")
