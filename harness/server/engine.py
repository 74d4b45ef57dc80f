"""What the OpenAI-compatible server computes: completions with prompt log-probabilities,
chat completions, and both streamed; on one loaded ``ChatModel``.

Log-probabilities follow the legacy completions API: with ``echo`` the prompt's tokens
come back with their log-probabilities (the first token has none), ``top_logprobs`` holds
the ``logprobs`` most likely tokens at each position, and ``text_offset`` gives each
token's start in the returned text, so a client can find where a continuation begins.
This is what lm-evaluation-harness and ``aimed-eval run --backend openai`` use for
``loglikelihood`` and ``cloze`` scoring.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ..inference import ChatModel


class BadRequest(ValueError):
    """A request the client must fix: HTTP 400 with this message."""


@dataclass
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: Optional[dict] = None


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class Engine:
    def __init__(self, bot: ChatModel, model_name: str, fingerprint: str):
        self.bot = bot
        self.model_name = model_name
        self.fingerprint = fingerprint
        self.max_length = bot.info.max_length

    # ---- prompts ------------------------------------------------------------------
    def chat_prompt(self, messages: list[dict]) -> str:
        """OpenAI messages -> the prompt the model's chat template makes of them."""
        system, turns, pending = None, [], None
        for i, m in enumerate(messages):
            role, content = m.get("role"), m.get("content")
            if isinstance(content, list):  # [{"type": "text", "text": ...}]
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if not isinstance(content, str) or role not in ("system", "user", "assistant"):
                raise BadRequest(f"messages[{i}]: give role system|user|assistant and text content")
            if role == "system":
                system = content
            elif role == "user":
                if pending is not None:
                    turns.append((pending, ""))
                pending = content
            else:
                turns.append((pending or "", content))
                pending = None
        if pending is None:
            raise BadRequest("messages: the last message must be the user's")
        return self.bot.prompt(pending, turns, system=system)

    def stops(self, requested: Any) -> tuple[str, ...]:
        if requested is None:
            extra: list[str] = []
        elif isinstance(requested, str):
            extra = [requested]
        elif isinstance(requested, list) and all(isinstance(s, str) for s in requested):
            extra = requested
        else:
            raise BadRequest("stop: give a string or a list of strings")
        return tuple(extra)

    # ---- log-probabilities ----------------------------------------------------------
    def prompt_logprobs(self, text: str, top: int) -> tuple[dict, int]:
        """Per-token log-probabilities of ``text`` itself (one forward pass)."""
        import torch

        tok = self.bot.tokenizer
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        start = self.bot.encode_prompt("")  # the template's start tokens, as the model reads a prompt
        ids, offsets = start + enc["input_ids"], [(0, 0)] * len(start) + enc["offset_mapping"]
        if len(ids) > self.max_length:
            raise BadRequest(f"prompt: {len(ids)} tokens, more than the model's {self.max_length}")
        if not ids:
            return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}, 0
        with self.bot._lock, torch.no_grad():
            logits = self.bot.model(input_ids=torch.tensor([ids], device=self.bot.info.device)).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)  # [T, V]; row t predicts token t+1
        chosen = logp[:-1].gather(1, torch.tensor(ids[1:], device=logp.device)[:, None])[:, 0].tolist()
        tokens = [tok.decode([i]) for i in ids]
        tops: list[Optional[dict]] = [None]
        if top > 0:
            values, index = logp[:-1].topk(top, dim=-1)
            for vs, ix in zip(values.tolist(), index.tolist()):
                tops.append({tok.decode([i]): v for i, v in zip(ix, vs)})
        else:
            tops += [{} for _ in ids[1:]]
        return {"tokens": tokens, "token_logprobs": [None] + chosen, "top_logprobs": tops,
                "text_offset": [int(s) for s, _ in offsets]}, len(ids)

    # ---- completions ----------------------------------------------------------------
    def complete(self, prompt: str, max_tokens: int, temperature: float, top_p: float, stop: tuple[str, ...],
                 echo: bool, logprobs: Optional[int], seed: Optional[int]) -> Completion:
        prompt_tokens = len(self.bot.encode_prompt(prompt))
        lp = None
        if echo and logprobs is not None:
            lp, prompt_tokens = self.prompt_logprobs(prompt, logprobs)
        text, counted = "", [0]
        if max_tokens > 0:
            text = "".join(self.stream(prompt, max_tokens, temperature, top_p, stop, seed, counted))
        n_out = counted[0]  # the tokens generated, not the text re-encoded (which can count more)
        finish = "length" if max_tokens > 0 and n_out >= max_tokens else "stop"
        return Completion(prompt + text if echo else text, finish, prompt_tokens, n_out, lp)

    def stream(self, prompt: str, max_tokens: int, temperature: float, top_p: float, stop: tuple[str, ...],
               seed: Optional[int], counter: Optional[list] = None) -> Iterator[str]:
        """Checked now (a BadRequest before any byte is sent), generated as it is read."""
        n_prompt = len(self.bot.encode_prompt(prompt))
        if n_prompt + max_tokens > self.max_length:
            raise BadRequest(f"prompt ({n_prompt} tokens) + max_tokens ({max_tokens}) exceed the model's "
                             f"{self.max_length}; shorten the prompt or lower max_tokens")
        return self.bot.stream(prompt, stop, counter, max_new_tokens=max_tokens, temperature=temperature,
                               top_p=top_p, seed=seed)

    def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model", "created": int(time.time()),
                                            "owned_by": "aimed-eval", "aimed_fingerprint": self.fingerprint}]}
