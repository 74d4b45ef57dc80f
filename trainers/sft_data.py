"""SFT examples: instruction data, ShareGPT conversations and harness task items, each
turned into text segments marked "train on this" (the responses) or not (the prompts).

Formats (one per file, told by the first record's keys):

- ``instruction`` / ``input`` / ``output`` (Alpaca, Huatuo; optional ``system``, ``history``
  as ``[[question, answer], ...]``);
- ``conversations``: ``[{"from": "human"|"gpt"|"system", "value": ...}, ...]`` (ShareGPT;
  ``role``/``content`` keys also work);
- harness tasks (``train_tasks: [demo_mcq]``): each item becomes the prompt the harness
  itself would put (:func:`aimed.harness.prompts.build_context`) and its answer, so the
  training format and the scoring format are the same.

Conversations are rendered with the harness's chat templates (``template_name``), so a
checkpoint is trained with the template it is scored with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from aimed.harness.errors import UserError
from aimed.harness.templates import TEMPLATES, TOKENIZER_TEMPLATE

from .data_files import field_text, read_records

Segments = list[tuple[str, bool]]  # (text, trained on)
Turns = list[tuple[str, str]]  # (user, assistant)

USER_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant", "bot")


def read_dialogues(path: Path, limit: Optional[int]) -> list[tuple[str, Turns, Optional[str]]]:
    """``(where, turns, system)`` for every record of an SFT file."""
    out = []
    fmt = None
    for where, rec in read_records(path, limit):
        if fmt is None:
            fmt = "alpaca" if "instruction" in rec else "sharegpt" if "conversations" in rec else None
            if fmt is None:
                raise UserError(f"{where}: unknown SFT format (keys {', '.join(sorted(rec)) or 'none'}); give "
                                "instruction/input/output records or ShareGPT 'conversations'")
        out.append((where, *(_alpaca(rec, where) if fmt == "alpaca" else _sharegpt(rec, where))))
    if not out:
        raise UserError(f"{path}: no examples (empty file); give at least one record")
    return out


def _alpaca(rec: dict, where: str) -> tuple[Turns, Optional[str]]:
    needs = "instruction records need instruction and output; input is optional"
    instruction = field_text(rec, "instruction", where, needs)
    extra = field_text(rec, "input", where, needs, required=False)
    output = field_text(rec, "output", where, needs)
    history = rec.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, (list, tuple)) and len(h) == 2 for h in history):
        raise UserError(f"{where}: field 'history' should be a list of [question, answer] pairs")
    user = instruction + ("\n" + extra if extra.strip() else "")
    return [(str(q), str(a)) for q, a in history] + [(user, output)], rec.get("system") or None


def conversation_turns(messages, where: str, open_end: bool = False) -> tuple[Turns, Optional[str], Optional[str]]:
    """ShareGPT messages -> (closed turns, system, the last user turn left open or None).

    ``open_end``: the conversation ends on a user turn (a preference pair's prompt)."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: field 'conversations' should be a non-empty list of messages")
    system, turns, pending = None, [], None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise UserError(f"{where}: conversations[{i}] should be an object with 'from' and 'value'")
        role = str(m.get("from", m.get("role", ""))).lower()
        value = m.get("value", m.get("content"))
        if not isinstance(value, str):
            raise UserError(f"{where}: conversations[{i}]: missing field 'value' (the message text)")
        if role == "system" and i == 0:
            system = value
        elif role in USER_ROLES and pending is None:
            pending = value
        elif role in ASSISTANT_ROLES and pending is not None:
            turns.append((pending, value))
            pending = None
        else:
            raise UserError(f"{where}: conversations[{i}] has 'from' {role!r} out of turn; messages should "
                            "alternate human, gpt (after an optional system)")
    if open_end and pending is None:
        raise UserError(f"{where}: conversations should end with the human turn the responses answer")
    if not open_end and not turns:
        raise UserError(f"{where}: conversations hold no human/gpt exchange to train on")
    return turns, system, pending


def _sharegpt(rec: dict, where: str) -> tuple[Turns, Optional[str]]:
    turns, system, _ = conversation_turns(rec.get("conversations"), where)
    return turns, system


def render(template_name: str, turns: list[tuple[str, Optional[str]]], system: Optional[str], tokenizer) -> str:
    """The conversation as text; a last turn with assistant None is left open for the reply."""
    if template_name != TOKENIZER_TEMPLATE:
        return TEMPLATES.get(template_name).render(turns, system)
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("template_name tokenizer: this tokenizer has no chat_template; name one of "
                        + ", ".join(TEMPLATES.names()))
    messages = [{"role": "system", "content": system}] if system else []
    for u, a in turns:
        messages.append({"role": "user", "content": u})
        if a is not None:
            messages.append({"role": "assistant", "content": a})
    open_end = bool(turns) and turns[-1][1] is None
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=open_end)


def dialogue_segments(turns: Turns, system: Optional[str], template_name: str, tokenizer) -> Segments:
    """Prompt and response segments of a conversation: every assistant reply is trained on."""
    segments: Segments = []
    done = ""
    for i, (user, _) in enumerate(turns):
        opened = render(template_name, [*turns[:i], (user, None)], system, tokenizer)
        closed = render(template_name, turns[: i + 1], system, tokenizer)
        if not (opened.startswith(done) and closed.startswith(opened)):
            raise UserError(f"template {template_name}: renders a conversation's turns inconsistently; "
                            "pick another template_name")
        segments += [(opened[len(done):], False), (closed[len(opened):], True)]
        done = closed
    return segments


def task_segments(task_names: list[str], template_name: str, tokenizer, limit: Optional[int],
                  counts: dict) -> list[tuple[str, Segments]]:
    """Items of harness tasks as (prompt, answer) segments, in the harness's own prompt format;
    ``counts["task:NAME"]`` gets (the task data's hash, items used)."""
    from aimed.harness.prompts import PromptConfig, build_context

    from aimed.harness.taskregistry import resolve_tasks

    out = []
    for task in resolve_tasks(task_names):
        cfg = PromptConfig(mode="loglikelihood", num_fewshot=0, template_name=template_name)
        samples = task.samples()[:limit] if limit else task.samples()
        if not samples:
            raise UserError(f"train_tasks: task {task.name!r} has no items")
        for s in samples:
            prompt = build_context(task.spec, s, [], cfg, tokenizer)
            answer = s.target if task.spec.kind == "generation" else "".join(s.answer)
            out.append((f"task {task.name}:{s.id}", [(prompt, False), (answer, True)]))
        counts[f"task:{task.name}"] = (task.data_hash, len(samples))
    return out


def encode_segments(segments: Segments, tokenizer, max_length: int,
                    start: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """(input_ids, labels): prompt tokens labelled -100; an EOS closes every trained reply.
    Tokens are encoded without special tokens, as the harness encodes prompts, after
    ``start`` (the template's start tokens, templates.start_token_ids: Llama's <s> for
    vicuna), untrained.

    A segment is encoded in the context of the text before it (the tokens the whole text
    gives past those of the text before), not alone: alone, a SentencePiece tokenizer
    (Llama's, so vicuna's and llama2-zh's) writes its dummy "▁" before the segment, and a
    reply " 多喝水" after "ASSISTANT:" would become "▁▁多…" where the model, continuing its
    prompt, writes "▁多…". Encoded in context, the prompts are the tokens the harness gives
    the rendered conversation. Where the whole text's tokens merge across a boundary, the
    segment is encoded after a newline instead (see ``_continuation_ids``)."""
    ids: list[int] = []
    labels: list[int] = []
    eos = tokenizer.eos_token_id
    before = ""
    for text, trained in segments:
        part = _continuation_ids(tokenizer, before, ids, text)
        before += text
        if trained and eos is not None and (not part or part[-1] != eos):
            part = part + [eos]
            before += tokenizer.eos_token  # so the next segment's context holds it too
        ids += part
        labels += part if trained else [-100] * len(part)
    ids, labels = list(start) + ids, [-100] * len(start) + labels
    if len(ids) > max_length:
        # Too long: a prompt longer than half the room loses its start (the system prompt,
        # old turns) so that the response keeps the other half; then the end is cut.
        first = next((i for i, lab in enumerate(labels) if lab != -100), len(labels))
        drop = max(0, first - max_length // 2)
        ids, labels = ids[drop:], labels[drop:]
    return ids[:max_length], labels[:max_length]


def _continuation_ids(tokenizer, before: str, before_ids: list[int], text: str) -> list[int]:
    """The tokens of ``text`` after ``before`` (already encoded as ``before_ids``): in the
    context of ``before`` where its tokens end at the boundary, else after a newline (a
    segment's first token rarely merges with one); alone only where neither holds."""
    if not before:  # the first prompt: encoded alone, as the harness encodes a prompt
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def encode(s: str) -> list[int]:
        return tokenizer(s, add_special_tokens=False)["input_ids"]

    for context, context_ids in ((before, before_ids), ("\n", None)):
        context_ids = encode(context) if context_ids is None else context_ids
        whole = encode(context + text)
        if whole[: len(context_ids)] == context_ids:
            return whole[len(context_ids):]
    return encode(text)
