"""Planting benchmark items into copies of training files, as leaks look: to measure the
scanner's recall (the tests, ``benchmarks/contamination_calibrate.py`` and
``benchmarks/contamination_bench.py`` use it; so can anyone checking their own data).

Four kinds of leak, each a rendering of an item's text:

- ``verbatim``: question, then one option a line (``A. 原发病``), then the answer text;
- ``punctuation``: the same with punctuation swapped or removed, spaces added and the
  options on one line in another style (``(A) 原发病  (B) ...``);
- ``reordered``: the options shuffled and relabelled ``A``, ``B``, ... in their new order;
- ``substituted``: verbatim, with one character in twenty (of those the matcher sees)
  replaced by another Chinese character.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Sequence

from .items import Item
from .normalise import normalise

KINDS = ("verbatim", "punctuation", "reordered", "substituted")
SUBSTITUTE_EVERY = 20
_PUNCT = "，,。.；;：:、 ？?！!（）()"
_COMMON_CJK = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定"


def render(item: Item, kind: str, rng: random.Random) -> str:
    """The item's text as a leak of ``kind`` would hold it."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    options = list(item.options)
    if kind == "reordered":
        rng.shuffle(options)
        options = [(string.ascii_uppercase[i], text) for i, (_, text) in enumerate(options)]
    if kind == "punctuation":
        style = rng.choice(["({}) {}", "{}、{}", "{}：{}", "{}) {}"])
        body = [_repunctuate(item.question, rng),
                "  ".join(style.format(k, _repunctuate(v, rng)) for k, v in options)]
        if item.answer:
            body.append(_repunctuate(item.answer, rng))
        return " ".join(b for b in body if b)
    text = "\n".join([item.question, *(f"{k}. {v}" for k, v in options), *([item.answer] if item.answer else [])])
    return _substitute(text, rng) if kind == "substituted" else text


def _repunctuate(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        if ch in _PUNCT or not normalise(ch):
            choice = rng.random()
            if choice < 0.3:
                continue  # removed
            out.append(rng.choice(_PUNCT) if choice < 0.8 else ch)
        else:
            out.append(ch)
            if rng.random() < 0.1:
                out.append(" ")
    return "".join(out)


def _substitute(text: str, rng: random.Random) -> str:
    """One character in ``SUBSTITUTE_EVERY`` of those the matcher keeps, at random places."""
    seen = [i for i, ch in enumerate(text) if normalise(ch)]
    chars = list(text)
    for i in rng.sample(seen, max(1, round(len(seen) / SUBSTITUTE_EVERY)) if seen else 0):
        chars[i] = rng.choice([c for c in _COMMON_CJK if c != chars[i]])
    return "".join(chars)


def plant(files: Sequence[Path], leaks: Sequence[tuple[Item, str]], out_dir: Path, seed: int = 0) -> list[Path]:
    """Copies of ``files`` in ``out_dir`` with each ``(item, kind)`` rendered into a new
    record of one of them (in turn), at a random place. A record follows its file's own
    layout: a line of a text file; for JSON, a copy of one of the file's records whose
    first text field holds the leak (an instruction, a conversation turn, a question)."""
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_file: list[list[str]] = [[] for _ in files]
    for i, (item, kind) in enumerate(leaks):
        per_file[i % len(files)].append(render(item, kind, rng))
    out = []
    for path, texts in zip(files, per_file):
        path = Path(path)
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        if path.suffix in (".json", ".jsonl"):
            records = [json.loads(line) for line in lines if line.strip()]
            new = [json.dumps(_with_text(rng.choice(records), t), ensure_ascii=False) for t in texts]
        else:
            new = [t.replace("\n", " ") for t in texts]
        for line in new:
            lines.insert(rng.randrange(len(lines) + 1), line)
        target = out_dir / path.name
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(target)
    return out


def _with_text(record, text: str):
    """``record`` with its first text value (depth first; not a role such as "human")
    replaced by ``text``."""
    done = False

    def walk(value):
        nonlocal done
        if isinstance(value, str) and len(value) >= 10 and not done:
            done = True
            return text
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    out = walk(record)
    return out if done else {"text": text}
