"""How a task's items become the text put to the model, per scoring mode.

Multiple choice (``loglikelihood`` and ``generate``)::

    {description}

    {few-shot example 1 with its answer}

    {question}（多选题）
    A. ...
    B. ...
    答案：

``loglikelihood`` scores the option letters as the continuation of that prompt;
``cloze`` shows the question alone and scores each option's text as the continuation;
``generate`` lets the model write and extracts the answer. With a chat template the
body is the user's turn and the answer prefix opens the assistant's reply.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from .samples import Sample
from .taskspec import Mode, TaskSpec
from .templates import RAW_TEMPLATE, render_prompt

MULTI_MARK = "（多选题）"


@dataclass(frozen=True)
class PromptConfig:
    mode: Mode
    num_fewshot: int
    seed: int = 1234
    template_name: str = RAW_TEMPLATE


def format_question(sample: Sample, with_options: bool = True) -> str:
    head = sample.question + (MULTI_MARK if sample.is_multi_answer else "")
    if not with_options:
        return head
    return head + "\n" + "\n".join(f"{k}. {v}" for k, v in sample.options.items())


def format_example(spec: TaskSpec, sample: Sample, mode: str, with_answer: bool) -> str:
    if spec.kind == "generation":
        body = spec.prompt.format(input=sample.question)
        return body + (sample.target if with_answer else "")
    if mode == Mode.CLOZE:
        body = format_question(sample, with_options=False) + "\n" + spec.answer_prefix
        answer = "、".join(sample.options[a] for a in sample.answer)
    else:
        body = format_question(sample) + "\n" + spec.answer_prefix
        answer = "".join(sample.answer)
    return body + (answer if with_answer else "")


def pick_fewshot(pool: list[Sample], sample: Sample, k: int, seed: int, task: str,
                 pool_is_own_file: bool = True) -> list[Sample]:
    """k examples, never the item itself; seeded by the item so order and batching don't matter.

    Only a pool read from the item's own file can hold the item: a separate dev file may
    reuse the test file's ids (CMMLU: anatomy-0 in both), which must not cost an example."""
    if k <= 0:
        return []
    candidates = [s for s in pool if s.id != sample.id] if pool_is_own_file else pool
    rng = random.Random(f"{seed}:{task}:{sample.id}")
    return rng.sample(candidates, min(k, len(candidates)))


def build_context(spec: TaskSpec, sample: Sample, shots: list[Sample], cfg: PromptConfig,
                  tokenizer=None) -> str:
    """The full context string; the model's answer is its continuation."""
    blocks = [spec.description] if spec.description else []
    blocks += [format_example(spec, s, cfg.mode, with_answer=True) for s in shots]
    current = format_example(spec, sample, cfg.mode, with_answer=False)
    if cfg.template_name == RAW_TEMPLATE:
        return "\n\n".join(blocks + [current])
    # Chat: the body is the user's turn; the answer prefix opens the assistant's reply.
    prefix = "" if spec.kind == "generation" else spec.answer_prefix
    body = current[: len(current) - len(prefix)] if prefix else current
    user = "\n\n".join(blocks + [body.rstrip()])
    return render_prompt(cfg.template_name, user, tokenizer) + prefix


def continuations(spec: TaskSpec, sample: Sample, mode: str) -> Optional[list[str]]:
    """What is scored after the context: option letters, option texts, or None (generate)."""
    if spec.kind == "generation" or mode == Mode.GENERATE:
        return None
    if mode == Mode.CLOZE:
        return list(sample.options.values())
    return list(sample.options.keys())
