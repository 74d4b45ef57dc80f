"""Load a causal LM, its tokenizer and optional LoRA adapters, with errors a user can act on."""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

from ..errors import UserError, read_json
from .args import ModelArgs
from .backend import CheckpointInfo

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
DTYPES = ("auto", "float32", "bfloat16", "float16")


def local_folder(name: str, what: str) -> Optional[Path]:
    """The folder for a local checkpoint, None for a hub id; a UserError for neither."""
    p = Path(name).expanduser()
    if p.is_dir():
        return p.resolve()
    if p.exists():
        raise UserError(f"{what} {name}: is a file; give the checkpoint folder (the one holding config.json)")
    if HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return None
    raise UserError(f"{what} {name}: no such folder; give a checkpoint folder or a hub id like org/name")


def snapshot_folder(repo_id: str, revision: Optional[str]) -> Path:
    """Fetch (or find in the local hub cache) a hub checkpoint."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision,
                                      allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                      "*.tiktoken", "*.py", "*.jinja"]))
    except Exception as exc:  # network, auth, missing repo: all the user's to fix
        raise UserError(f"{repo_id}: could not get it from the hub ({type(exc).__name__}); check the id, "
                        "your network and HF_TOKEN, or give a local checkpoint folder") from None


def resolve_device(args: ModelArgs) -> str:
    if args.gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.gpus
    import torch

    if args.only_cpu or args.device == "cpu":
        return "cpu"
    if args.device != "auto":
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device is visible; use --device cpu or --only_cpu")
        return args.device
    if not torch.cuda.is_available():
        return "cpu"
    from ..distributed import current

    procs = current()  # a data-parallel launch: each process on its own GPU
    return f"cuda:{procs.local_rank}" if procs.size > 1 else "cuda"


def resolve_dtype(name: str, device: str):
    import torch

    if name not in DTYPES:
        raise UserError(f"--dtype {name}: unknown; use one of {', '.join(DTYPES)}")
    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def _check_checkpoint(folder: Path, what: str, marker: str) -> None:
    if not (folder / marker).exists():
        raise UserError(f"{what} {folder}: no {marker} there; give the folder a trainer or "
                        "save_pretrained wrote")
    read_json(folder / marker, "the checkpoint is damaged")
    for weights in sorted(folder.glob("*.safetensors")):
        _check_safetensors(weights)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_pickle(folder: Path, what: str, allow: bool) -> None:
    """Weights only as pickle files (``pytorch_model.bin``): unpickling can run code, so they
    load only with ``--allow_pickle``."""
    if any(folder.glob("*.safetensors")):
        return  # transformers and peft prefer the safetensors files
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if pickles and not allow:
        raise UserError(f"{what} {folder}: its weights are pickle files ({', '.join(pickles[:3])}), which can "
                        "run code when loaded; pass --allow_pickle if you trust this checkpoint, or convert "
                        "it to safetensors")


def check_own_code(folder: Path, what: str, trust_remote_code: bool) -> None:
    """A checkpoint whose architecture exists only as its own Python code (``auto_map`` with a
    ``model_type`` transformers does not know: Baichuan, ChatGLM2/3, InternLM2) cannot load
    without running that code: refused in one line unless --trust_remote_code. (A known
    ``model_type`` with an ``auto_map`` loads transformers' own class instead, with the
    warning of ``remote_code_note``.)"""
    if trust_remote_code:
        return
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not isinstance(auto_map, dict) or not auto_map:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    model_type = config.get("model_type")
    if model_type in CONFIG_MAPPING_NAMES:
        return
    own = auto_map.get("AutoModelForCausalLM") or next(iter(auto_map.values()))
    raise UserError(f"{what} {folder}: its architecture (model_type {model_type!r}, {own}) is the "
                    "checkpoint's own Python code, which transformers does not have; pass --trust_remote_code "
                    "to run that code if you trust this checkpoint")


def remote_code_note(folder: Path, model, trust_remote_code: bool) -> Optional[str]:
    """A warning when a checkpoint names its own modelling code (``auto_map``) that was not run."""
    if trust_remote_code:
        return None
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not auto_map:
        return None
    own = auto_map.get("AutoModelForCausalLM") if isinstance(auto_map, dict) else None
    return (f"{folder}: config.json names its own code ({own or auto_map}), which was not run (no "
            f"--trust_remote_code); transformers' {type(model).__name__} was used instead")


def _check_safetensors(path: Path) -> None:
    """Read the header and touch every tensor's byte range: a truncated file fails here."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key).get_shape()
        size = path.stat().st_size
        with path.open("rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + header_len + end != size:
            raise ValueError(f"expected {8 + header_len + end} bytes, found {size}")
    except Exception as exc:  # safetensors raises its own error types
        raise UserError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:120]}); "
                        "the file is corrupt or truncated: save or download it again") from None


def load_tokenizer(args: ModelArgs, model_folder: Optional[Path]):
    from transformers import AutoTokenizer

    source = args.tokenizer_path or (str(model_folder) if model_folder else args.model)
    if args.tokenizer_path:
        local_folder(args.tokenizer_path, "--tokenizer_path")
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=args.trust_remote_code,
                                            revision=args.revision)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source}: no usable tokenizer ({str(exc).splitlines()[0][:160]}); "
                        "pass --tokenizer_path to a folder with tokenizer files") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def checkpoint_info(args: ModelArgs) -> CheckpointInfo:
    """The checked folders, device and dtype, without loading weights or tokenizer: what a
    run records and fingerprints (a rerun served from the response cache needs no more)."""
    folder = local_folder(args.model, "--model")
    if folder is None:
        folder = snapshot_folder(args.model, args.revision)
    _check_checkpoint(folder, "--model", "config.json")
    check_pickle(folder, "--model", args.allow_pickle)
    check_own_code(folder, "--model", args.trust_remote_code)
    if args.tokenizer_path:
        local_folder(args.tokenizer_path, "--tokenizer_path")
    if len(args.lora_model) > 1:
        raise UserError("--lora_model: give one adapter folder a run")
    adapters = []
    for name in args.lora_model:
        afolder = local_folder(name, "--lora_model") or snapshot_folder(name, None)
        _check_checkpoint(afolder, "--lora_model", "adapter_config.json")
        check_pickle(afolder, "--lora_model", args.allow_pickle)
        check_adapter_base(afolder, folder)
        adapters.append(afolder)
    device = resolve_device(args)
    dtype = resolve_dtype(args.dtype, device)
    return CheckpointInfo(model_folder=str(folder), adapter_folders=[str(a) for a in adapters],
                          device=device, dtype=str(dtype).replace("torch.", ""))


def load_model(args: ModelArgs, checked: Optional[CheckpointInfo] = None,
               tokenizer: Any = None) -> tuple[Any, Any, CheckpointInfo]:
    """(model in eval mode, tokenizer, info). info records folders, device, dtype and max
    length. ``checked``: checkpoint_info(args) when the caller has it; ``tokenizer``: one
    already loaded with load_tokenizer(args, ...)."""
    import torch
    from transformers import AutoModelForCausalLM

    info = replace(checked) if checked else checkpoint_info(args)
    folder, adapters = Path(info.model_folder), [Path(a) for a in info.adapter_folders]
    device, dtype = info.device, getattr(torch, info.dtype)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(args, folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=dtype, trust_remote_code=args.trust_remote_code, use_safetensors=None)
    except (OSError, ValueError, KeyError, pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{folder}: could not load the model ({first}); check the checkpoint "
                        "(pass --trust_remote_code for custom architectures)") from None
    note = remote_code_note(folder, model, args.trust_remote_code)
    if note:
        print(f"aimed-eval: warning: {note}", file=sys.stderr)
    if args.resize_emb or len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        if not args.resize_emb:
            raise UserError(f"the tokenizer has {len(tokenizer)} tokens but {folder} has "
                            f"{model.get_input_embeddings().weight.shape[0]} embeddings; pass --resize_emb")
        model.resize_token_embeddings(len(tokenizer))
    if adapters:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapters[0]))
        except (RuntimeError, ValueError, KeyError) as exc:  # shapes or module names of another base
            raise UserError(adapter_mismatch(adapters[0], folder, exc)) from None
    model.to(device)
    model.eval()  # callers score under torch.no_grad(); grad mode stays the caller's (trainers need it)
    info.max_length = _max_length(model, tokenizer)
    return model, tokenizer, info


def _family(folder: Path) -> Optional[tuple]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (config.get("model_type"), tuple(config.get("architectures") or ())) if isinstance(config, dict) else None


def check_adapter_base(adapter: Path, base: Path) -> None:
    """An adapter trained on another model family than ``base`` is refused, even where its
    shapes happen to fit (two tiny or two 7B models of equal width load each other's LoRA
    without an error and score nonsense). Only a recorded base that is a local folder is
    compared; a moved base or a hub id passes to peft's own checks."""
    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get(
            "base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return
    if not recorded or not Path(recorded).is_dir() or Path(recorded).resolve() == base.resolve():
        return
    theirs, ours = _family(Path(recorded)), _family(base)
    if theirs and ours and theirs[0] != ours[0]:
        raise UserError(f"--lora_model {adapter}: was trained on {recorded} ({theirs[0]}), not a {ours[0]} "
                        f"model like {base}; it does not fit: give its own base with --model")


def adapter_mismatch(adapter: Path, base: Path, exc: BaseException) -> str:
    """The message for a LoRA adapter that does not fit the base it was put on."""
    trained_on = None
    try:
        trained_on = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get(
            "base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        pass
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:140]
    hint = f"it was trained on {trained_on}: give that base with --model" if trained_on else \
        "give the base model it was trained on with --model"
    return f"--lora_model {adapter}: does not fit the base {base} ({first}); {hint}"


def _max_length(model, tokenizer) -> int:
    cfg = model.config
    for attr in ("max_position_embeddings", "n_positions", "seq_length"):
        if isinstance(getattr(cfg, attr, None), int):
            return getattr(cfg, attr)
    limit = getattr(tokenizer, "model_max_length", 2048)
    return limit if limit < 1_000_000 else 2048
