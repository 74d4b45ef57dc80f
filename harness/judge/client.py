"""Ask a judge model one prompt at a time, through any backend, and time it.

An endpoint judge speaks the OpenAI API through the ``openai`` backend (its retries with
backoff on 429, 5xx and timeouts, its one-line errors for a server that is down or a key
that is wrong), by chat completions or, with ``api: completions``, the prompt wrapped by
``template_name``. A local judge is a checkpoint loaded by the ``hf`` backend; it answers
one request at a time (a lock), greedy.

The fingerprint names the judge exactly (the endpoint's model and the checkpoint it
reports, or the local weights), plus how it is asked; the judgement cache keys on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..models.args import ModelArgs
from ..models.fingerprint import combine
from ..models.requests import GenerateRequest
from ..templates import render_prompt, template_stops
from .config import DEFAULT_KEY_ENV, JudgeConfig


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class JudgeClient:
    """The judge of a run: ``ask(prompt)`` is safe to call from ``concurrency`` threads."""

    def __init__(self, config: JudgeConfig, backend: Any, fingerprint: str):
        self.config = config
        self.backend = backend
        self.fingerprint = fingerprint
        self.concurrency = config.concurrency if config.backend == "openai" else 1
        self._lock = threading.Lock()

    def describe(self) -> dict:
        served = self.backend.model if self.config.backend == "openai" else None  # the id the endpoint gave
        return {**self.config.describe(), **({"model": served} if served else {}), "fingerprint": self.fingerprint}

    def ask(self, prompt: str) -> Reply:
        started = time.perf_counter()
        if self.config.backend == "openai":
            text, p_tok, c_tok = self._ask_endpoint(prompt)
        else:
            with self._lock:
                text, p_tok, c_tok = self._ask_local(prompt)
        return Reply(text, p_tok, c_tok, time.perf_counter() - started)

    def _ask_endpoint(self, prompt: str) -> tuple[str, int, int]:
        c = self.config
        body: dict = {"model": self.backend.model, "max_tokens": c.max_new_tokens, "temperature": 0}
        try:
            if c.api == "chat":
                reply = self.backend.post("/chat/completions", {**body, "messages": [{"role": "user", "content": prompt}]})
                text = reply["choices"][0]["message"]["content"]
            else:
                stops = list(template_stops(c.template_name))[:4]
                reply = self.backend.post("/completions", {**body, "prompt": render_prompt(c.template_name, prompt),
                                                           **({"stop": stops} if stops else {})})
                text = reply["choices"][0]["text"]
        except UserError as exc:
            raise UserError(f"judge: {exc.message}") from None
        except (KeyError, IndexError, TypeError):
            raise UserError(f"judge at {c.base_url}: the answer has no choices[0] text; is it an OpenAI-compatible "
                            f"{c.api} API?") from None
        usage = reply.get("usage") or {}
        return text or "", int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    def _ask_local(self, prompt: str) -> tuple[str, int, int]:
        c = self.config
        text = render_prompt(c.template_name, prompt)
        out = self.backend.generate([GenerateRequest(text, c.max_new_tokens, template_stops(c.template_name))])[0]
        tok = self.backend.tokenizer
        return out, len(tok.encode(text, add_special_tokens=False)), len(tok.encode(out, add_special_tokens=False))


def build_judge(config: JudgeConfig, hash_folder: Any) -> JudgeClient:
    """Connect to (or load) the judge; a judge that cannot be reached fails here, before any
    candidate model is loaded."""
    version = ("judge-v1", config.api, config.template_name, config.max_new_tokens)
    if config.backend == "openai":
        from ..models.openai_api import OpenAIBackend

        try:
            backend = OpenAIBackend(config.base_url, config.model, api_key=config.api_key(),
                                    concurrency=config.concurrency, max_retries=config.max_retries,
                                    timeout=config.timeout)
        except UserError as exc:
            where = f"check the key in ${config.api_key_env or DEFAULT_KEY_ENV} (the judge config's api_key_env)"
            raise UserError(f"judge: {exc.message.replace('check the API key', where)}") from None
        fp = combine(backend.fingerprint(ModelArgs(model=backend.model), hash_folder), *map(str, version))
        return JudgeClient(config, backend, fp)
    from ..models.backend import BackendOptions, build_backend

    args = ModelArgs(model=config.model or "", template_name=config.template_name, only_cpu=config.only_cpu)
    if not config.model:
        raise UserError("judge: give the judge's checkpoint (--judge FOLDER) or an endpoint (--judge URL)")
    try:
        backend = build_backend("hf", BackendOptions(batch_size="1"), [args])
    except UserError as exc:  # the loader names --model; here the folder came from --judge
        raise UserError(f"judge: {exc.message.replace('--model ', '--judge ', 1)}") from None
    return JudgeClient(config, backend, combine(backend.fingerprint(args, hash_folder), *map(str, version)))

