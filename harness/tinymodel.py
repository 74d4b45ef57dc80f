"""Build a tiny causal LM from scratch: a byte-level BPE tokenizer trained on a little text
and a small model of one of the base-model families teams start from, with random
weights, saved with ``save_pretrained``.

The Quick start's demo and the tests use it, so they run with no download, through the
same loading code as real checkpoints.

Families (``arch``): ``llama`` and ``qwen2`` (the defaults the demo and most tests use),
``qwen3``, ``glm`` (GLM-4's transformers class, ``GlmForCausalLM``), ``mistral`` and
``baichuan`` (a Llama with Baichuan's conventions: full multi-head attention, its
feed-forward ratio, pad/bos/eos at ids 0/1/2, and its chat tokens in the vocabulary). The
new families' tokenizers hold their chat template's markers as special tokens, so a
template's markers are one token each, as in the real vocabularies; ``llama`` and
``qwen2`` are built exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

SPECIAL = ["<s>", "</s>", "<pad>", "<unk>"]


@dataclass(frozen=True)
class Family:
    config: str  # the transformers config class
    template: str  # the chat template (harness/templates.py) its chat models use
    tokens: tuple[str, ...] = ()  # the template's markers, special tokens of its tokenizer
    special: tuple[str, ...] = tuple(SPECIAL)  # the first ids of the vocabulary, in order
    kv_heads: int = 2  # grouped-query attention unless the family has none
    ffn_ratio: float = 2.0  # intermediate_size / hidden_size


_CHATML = ("<|im_start|>", "<|im_end|>")
FAMILIES: dict[str, Family] = {
    "llama": Family("LlamaConfig", "llama2-zh"),
    "qwen2": Family("Qwen2Config", "chatml"),
    "qwen3": Family("Qwen3Config", "qwen3", _CHATML + ("<think>", "</think>")),
    "glm": Family("GlmConfig", "glm4", ("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>",
                                        "<|observation|>")),
    "mistral": Family("MistralConfig", "vicuna", ("[INST]", "[/INST]")),
    # Baichuan2-7B: 32 heads with no key/value grouping, intermediate 11008 for hidden 4096,
    # <unk> <s> </s> first in the vocabulary, <reserved_106>/<reserved_107> open the turns
    "baichuan": Family("LlamaConfig", "baichuan2", ("<reserved_106>", "<reserved_107>"),
                       special=("<unk>", "<s>", "</s>", "<pad>"), kv_heads=4, ffn_ratio=11008 / 4096),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1200, special: Iterable[str] = SPECIAL):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build_tiny_model(out_dir: Path, texts: Iterable[str], arch: str = "llama", seed: int = 0,
                     hidden_size: int = 64, layers: int = 2, vocab_size: int = 1200,
                     max_positions: int = 4096) -> Path:
    """Write a tokenizer and a random-weight model of family ``arch`` to ``out_dir``; returns it."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    if arch not in FAMILIES:
        raise ValueError(f"arch {arch!r}: not one of {', '.join(FAMILIES)}")
    family = FAMILIES[arch]
    tokenizer = train_tokenizer(texts, vocab_size, list(family.special) + list(family.tokens))
    heads = 4
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size,
                  intermediate_size=int(hidden_size * family.ffn_ratio), num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=family.kv_heads,
                  max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  tie_word_embeddings=False)
    if arch not in ("llama", "qwen2"):
        common["head_dim"] = hidden_size // heads
    config = getattr(transformers, family.config)(**common)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir
