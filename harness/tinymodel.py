"""Build a tiny causal LM from scratch: a byte-level BPE tokenizer trained on a little text
and a small Llama or Qwen2 model with random weights, saved with ``save_pretrained``.

The Quick start's demo and the tests use it, so they run with no download, through the
same loading code as real checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

SPECIAL = ["<s>", "</s>", "<pad>", "<unk>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_tiny_model(out_dir: Path, texts: Iterable[str], arch: str = "llama", seed: int = 0,
                     hidden_size: int = 64, layers: int = 2, vocab_size: int = 1200,
                     max_positions: int = 4096) -> Path:
    """Write a tokenizer and a random-weight model to ``out_dir``; returns it."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    tokenizer = train_tokenizer(texts, vocab_size)
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                  num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  tie_word_embeddings=False)
    config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
