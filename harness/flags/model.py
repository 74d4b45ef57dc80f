"""The model flags of the original AiMed tools, shared by every command that names a model."""

from __future__ import annotations

import argparse

from .. import flag_types
from ..models.args import ModelArgs
from ..templates import RAW_TEMPLATE, template_names


def add_model_flags(p: argparse.ArgumentParser, required: bool = True, template_default: str = RAW_TEMPLATE,
                    several: bool = False) -> None:
    """``template_default``: raw for scoring (base checkpoints), vicuna for chatting, as the
    original tools did. ``several``: the command (``run``) takes a,b,c adapters, each on
    its own; the others' help says nothing of it."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "--base_model", dest="model", required=required,
                   help="checkpoint folder or hub id (--base_model is the original tools' name)"
                        + ("; or LoRA adapter folders a,b,c of one base, each scored on its own" if several else ""))
    g.add_argument("--lora_model", default="", help="PEFT LoRA adapter folder or hub id, applied on --model"
                   + ("; a,b,c scores each adapter on its own (one base load, a run folder each)" if several else ""))
    g.add_argument("--tokenizer_path", default=None, help="tokenizer folder, when not the model's own")
    g.add_argument("--template_name", default=template_default, choices=template_names(), metavar="NAME",
                   help=f"chat template: {', '.join(template_names())} (default: {template_default})")
    g.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"), help="auto | float32 | bfloat16 | float16")
    g.add_argument("--device", default="auto", type=flag_types.device, help="auto | cpu | cuda | cuda:N")
    g.add_argument("--only_cpu", action="store_true", help="run on the CPU even when a GPU is there")
    g.add_argument("--gpus", default=None, type=flag_types.gpu_ids, help="GPU ids to use, e.g. 0,1 (sets CUDA_VISIBLE_DEVICES)")
    g.add_argument("--resize_emb", action="store_true", help="resize embeddings to the tokenizer's vocabulary")
    g.add_argument("--model_type", default="auto", help="llama, baichuan, chatglm, qwen, ... (recorded; "
                   "the architecture comes from config.json)")
    g.add_argument("--trust_remote_code", action="store_true", help="allow the checkpoint's own Python code")
    g.add_argument("--allow_pickle", action="store_true", help="load pickle weights (*.bin, *.pt) of a "
                   "checkpoint without safetensors; pickle can run code, so only for checkpoints you trust")


def model_args(ns: argparse.Namespace) -> ModelArgs:
    return ModelArgs(model=ns.model, lora_model=[x for x in ns.lora_model.split(",") if x],
                     tokenizer_path=ns.tokenizer_path, template_name=ns.template_name, dtype=ns.dtype,
                     device=ns.device, only_cpu=ns.only_cpu, gpus=ns.gpus, resize_emb=ns.resize_emb,
                     model_type=ns.model_type, trust_remote_code=ns.trust_remote_code,
                     allow_pickle=ns.allow_pickle)
