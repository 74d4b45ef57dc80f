"""Fingerprints: what makes two checkpoints the same, for the response cache and lineage.

A checkpoint's fingerprint hashes the content of its weight, config and tokenizer files,
so two checkpoints of one training run (same shapes, other weights) never collide.
Hashing a large checkpoint takes seconds, so file hashes are remembered by (path,
size, mtime) in the cache database.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Optional

from ..templates import template_start

HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".tiktoken", ".py", ".jinja")
CHUNK = 1 << 22

# (path, size, mtime_ns) -> sha256, or None when unknown; set by the cache.
FileHashMemo = tuple[Callable[[str, int, int], Optional[str]], Callable[[str, int, int, str], None]]


def file_sha256(path: Path, memo: Optional[FileHashMemo] = None) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo and (known := memo[0](*key)):
        return known
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    if memo:
        memo[1](*key, digest)
    return digest


def folder_fingerprint(folder: Path, memo: Optional[FileHashMemo] = None) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in HASHED_SUFFIXES and p.name != "aimed_checkpoint.json":
            h.update(p.name.encode() + b"\0" + file_sha256(p, memo).encode())
    return h.hexdigest()


def combine(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def checkpoint_fingerprint(model_folder: str, adapter_folders: list[str], args, dtype: str,
                           hash_folder: Callable[[Path], str], engine: Optional[str] = None) -> str:
    """A local checkpoint's fingerprint: its files, its adapters' and tokenizer's, and the
    options that change its answers (template, dtype, resized embeddings). ``engine``: a
    backend other than ``hf`` (another engine's kernels give other numbers). ``args``: the
    run's ``ModelArgs``."""
    parts = [hash_folder(Path(model_folder))]
    parts += [hash_folder(Path(a)) for a in adapter_folders]
    if args.tokenizer_path:
        parts.append(hash_folder(Path(args.tokenizer_path)))
    parts += [f"template={args.template_name}", f"dtype={dtype}", f"resize={args.resize_emb}"]
    if template_start(args.template_name):  # prompts start with the tokenizer's start tokens (answers changed)
        parts.append("start=tokenizer")
    if engine:
        parts.append(f"backend={engine}")
    return combine(*parts)
