"""The scoring benchmark's checkpoint: a Qwen2-shaped model with random weights and a
151,936-token vocabulary, built locally (nothing is downloaded).

The tokenizer is a byte-level BPE trained on the local medical text that is *not*
scored (the pretraining, SFT and preference files, CSL abstracts, CMMLU, CMExam's
test_10), so CMExam val is tokenised as unseen text. Its learned vocabulary is then
filled up to 151,936 entries with CJK character pairs that no merge produces: they
are never the result of encoding, but every id the random model can emit decodes to
Chinese text, and the output layer has Qwen2's real width (the cost that matters).

The body follows Qwen2-0.5B's proportions at hidden size 512: intermediate size 2816
(Qwen2-0.5B: 4864/896 = 5.4x hidden), 8 query heads and 2 key-value heads, q/k/v
biases, untied output layer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

VOCAB = 151_936
SHAPE = dict(hidden_size=512, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=8,
             num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False)
LEARNED = 60_000  # BPE merges learned from the corpus before the fill


def corpus(data: Path) -> list[str]:
    texts: list[str] = []
    texts += (data / "train" / "pretrain" / "fever.txt").read_text(encoding="utf-8").splitlines()
    for f in sorted((data / "train").rglob("*.json*")):
        raw = f.read_text(encoding="utf-8")
        try:
            rows = json.loads(raw)
        except ValueError:  # JSON lines, whatever the suffix says
            rows = [json.loads(x) for x in raw.splitlines() if x.strip()]
        for r in rows if isinstance(rows, list) else []:
            texts += [str(v) for v in (r.values() if isinstance(r, dict) else [r]) if isinstance(v, str)]
    for f in sorted((data / "csl").rglob("*.tsv")):
        texts += f.read_text(encoding="utf-8").splitlines()
    for f in sorted((data / "cmmlu").rglob("*.csv")) + [data / "cmexam" / "test_10.csv"]:
        with f.open(encoding="utf-8-sig", newline="") as fh:
            texts += [" ".join(row) for row in csv.reader(fh)]
    return [t for t in texts if t.strip()]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what ByteLevel BPE vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def fill_vocab(tokenizer, size: int):
    """The tokenizer with its BPE vocabulary filled to ``size`` entries by unreachable CJK pairs."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = spec["model"]["vocab"]
    table = _bytes_to_unicode()
    a = 0
    while len(vocab) < size:
        pair = chr(0x4E00 + a % 20000) + chr(0x4E00 + (a // 20000 * 7919 + a) % 20000)  # distinct pairs
        word = "".join(table[b] for b in pair.encode("utf-8"))
        vocab.setdefault(word, len(vocab))
        a += 1
    filled = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    return PreTrainedTokenizerFast(tokenizer_object=filled, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


def build(out: Path, data: Path, seed: int = 0, learned: int = LEARNED) -> Path:
    """Write the checkpoint to ``out`` (kept and reused when it is already there)."""
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        return out
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from aimed.harness.tinymodel import train_tokenizer

    tok = fill_vocab(train_tokenizer(corpus(data), vocab_size=learned), VOCAB)
    assert len(tok) == VOCAB, len(tok)
    config = Qwen2Config(vocab_size=VOCAB, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **SHAPE)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    model.save_pretrained(out, safe_serialization=True)
    return out


def non_embedding_params(model) -> int:
    """Parameters outside the input embedding and the output layer."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    skip = {id(emb), id(head)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)
