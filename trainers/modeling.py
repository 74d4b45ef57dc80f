"""Model, tokenizer, LoRA and trainer arguments for a stage, the same way for every stage.

``finetune``: ``full`` trains all weights; ``lora`` adds a peft adapter (checkpoints are
adapters, scored as base + adapter); ``qlora`` loads the base in 4 bits (bitsandbytes,
CUDA only) and adds LoRA on top.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from aimed.harness.errors import UserError

from .base import StageConfig


def check_qlora(config: StageConfig) -> None:
    if config.finetune != "qlora":
        return
    import torch

    if config.only_cpu or not torch.cuda.is_available():
        raise UserError("finetune qlora: needs a CUDA GPU (4-bit weights); use finetune: lora on the CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("finetune qlora: needs bitsandbytes; `pip install \"aimed-eval[qlora]\"`, or use finetune: lora")


def device_of(config: StageConfig) -> str:
    import torch

    return "cuda" if torch.cuda.is_available() and not config.only_cpu else "cpu"


def torch_dtype(config: StageConfig):
    from aimed.harness.models.loading import resolve_dtype

    return resolve_dtype(config.dtype, device_of(config))


def load_tokenizer(folder: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder}: no usable tokenizer ({str(exc).splitlines()[0][:160]})") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_model(folder: str, config: StageConfig, auto_class: str = "AutoModelForCausalLM", **kwargs) -> Any:
    """The model to train, from ``folder``, in the dtype and quantisation ``config`` asks for.

    Full fine-tuning keeps fp32 master weights (mixed precision comes from the trainer's
    bf16/fp16 flags); LoRA loads the frozen base in the training dtype."""
    import torch
    import transformers

    cls = getattr(transformers, auto_class)
    dtype = torch_dtype(config)
    options: dict = {"dtype": torch.float32 if config.finetune == "full" else dtype, **kwargs}
    if config.finetune == "qlora":
        options["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16)
        options["device_map"] = {"": 0}
    try:
        model = cls.from_pretrained(folder, **options)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{folder}: could not load the model ({str(exc).splitlines()[0][:160]})") from None
    if config.finetune == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model)
    return model


def lora_config(config: StageConfig, task_type: str = "CAUSAL_LM"):
    """peft's LoraConfig for ``config``, or None for full fine-tuning."""
    if config.finetune == "full":
        return None
    from peft import LoraConfig

    targets = config.lora_target_modules.strip()
    target_modules: Any = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=target_modules, task_type=task_type, bias="none")


def training_args(cls, config: StageConfig, output_dir: Path, **extra):
    """A trl/transformers ``TrainingArguments`` subclass ``cls`` filled from the common fields.

    Saving is by steps (the last step always saved: transformers' DefaultFlowCallback),
    weights only (no optimizer state: checkpoints are for scoring and later stages), and
    the first step is logged so that a stage reports its first and last loss."""
    import torch

    dtype = torch_dtype(config)
    on_gpu = device_of(config) == "cuda"
    return cls(
        output_dir=str(output_dir), learning_rate=config.learning_rate, max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs, per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, seed=config.seed, data_seed=config.seed,
        save_strategy="steps", save_steps=config.save_steps, save_only_model=True,
        logging_steps=config.logging_steps, logging_first_step=True, report_to="none",
        gradient_checkpointing=config.gradient_checkpointing,
        use_cpu=not on_gpu, bf16=on_gpu and dtype == torch.bfloat16, fp16=on_gpu and dtype == torch.float16,
        lr_scheduler_type=config.lr_scheduler_type, warmup_steps=config.warmup_steps, dataloader_num_workers=0,
        **extra)


def output_dir_of(stage: str, config: StageConfig, base_model: str) -> Path:
    return Path(config.output_dir) if config.output_dir else Path("aimed_train") / base_model / stage


def clear_output_dir(out: Path) -> None:
    """Start from an empty folder (``train_stage`` has checked overwrite is allowed)."""
    import shutil

    from aimed.harness.owned import write_marker

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_marker(out, "stage")
