"""A backend that scores any OpenAI-compatible server (``aimed-eval serve``, vLLM, ...).

``generate`` mode always works (``/v1/completions`` with the prompt the harness built).
``loglikelihood`` and ``cloze`` need prompt log-probabilities: each option is sent as
``context + option`` with ``echo: true, max_tokens: 0, logprobs: 1``, and the
log-probabilities of the tokens that start at or after the end of the context (by
``text_offset``) are summed; a token counts as greedy when it is the top-1 token at its
position. All options of an item go in one request (a list of prompts).

Requests run ``concurrency`` at a time; connection errors, 429 and 5xx are retried with
exponential backoff (and jitter), other 4xx are the user's to fix and fail at once.
Answers go through the same response cache as the in-process backend, keyed by the
server's address, the model id and, when the server reports one (``aimed-eval serve``
does), the checkpoint's fingerprint.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

from ..errors import UserError
from ..templates import TOKENIZER_TEMPLATE
from .args import ModelArgs
from .backend import BackendKind, BackendOptions, CheckpointInfo, HashFolder
from .fingerprint import combine
from .requests import ContinuationScore, GenerateRequest, LoglikelihoodRequest, cut_at_stop

RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)
MAX_STOPS = 4  # the completions API takes at most four; the rest are cut here


class OpenAIBackend:
    name = "openai"

    def __init__(self, base_url: str, model: Optional[str], api_key: Optional[str] = None, concurrency: int = 8,
                 max_retries: int = 5, timeout: float = 120.0, tokenizer: Any = None):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_retries = max_retries
        self.timeout = timeout
        self._tokenizer = tokenizer  # only for --template_name tokenizer prompts
        served = self._request("GET", "/models").get("data", [])
        if model is None and len(served) == 1:  # the endpoint's only model (a judge named by URL)
            model = self.model = served[0].get("id")
        entry = next((m for m in served if m.get("id") == model), None)
        if entry is None:
            ids = ", ".join(m.get("id", "?") for m in served) or "none"
            what = f"--model {model}: not served" if model else "several models are served"
            raise UserError(f"{what} at {self.base_url} (it serves: {ids}); name one of them")
        self.served_fingerprint = entry.get("aimed_fingerprint")
        self.info = CheckpointInfo(model_folder=None, device=self.base_url, dtype="remote",
                                   served_fingerprint=self.served_fingerprint)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            raise UserError("--template_name tokenizer with --backend openai: give --tokenizer_path")
        return self._tokenizer

    def use_adapter(self, folder: str) -> None:
        raise UserError("--lora_model applies to backends that load the model here; serve the adapter "
                        "and name it with --model")

    def fingerprint(self, args: ModelArgs, hash_folder: HashFolder) -> str:
        # the server's weights are not here to hash: its address, the model id and what it
        # reports of its checkpoint (aimed-eval serve reports the checkpoint's fingerprint)
        return combine("openai", self.base_url, self.model, self.served_fingerprint or "unknown-weights")

    # ---- HTTP ---------------------------------------------------------------------
    def post(self, path: str, body: dict) -> dict:
        """One POST with the backend's retries (the judge's chat requests use it)."""
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    body_bytes = resp.read()
                try:
                    return json.loads(body_bytes)
                except ValueError:
                    raise UserError(f"{url}: the server's answer is not JSON ({body_bytes[:80]!r}); is --base_url "
                                    "an OpenAI-compatible API (ending in /v1)?") from None
            except urllib.error.HTTPError as exc:
                detail = _error_message(exc)
                if exc.code not in RETRY_STATUS or attempt == self.max_retries:
                    hint = "; check the API key" if exc.code in (401, 403) else ""
                    raise UserError(f"{url}: HTTP {exc.code} {detail}{hint}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                if attempt == self.max_retries:
                    reason = getattr(exc, "reason", exc)
                    raise UserError(f"{url}: cannot reach the server ({reason}); check --base_url and that "
                                    "the server is running") from None
            time.sleep(min(30.0, 0.25 * 2 ** attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")

    def _map(self, fn, items: Sequence, bar) -> list:
        out: list = [None] * len(items)

        def work(i):
            out[i] = fn(items[i])
            if bar is not None:
                bar.update(1)

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(work, range(len(items))))  # list(): re-raise the first error
        return out

    # ---- the backend interface ------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], bar=None) -> list[list[ContinuationScore]]:
        return self._map(self._score_one, requests, bar)

    def _score_one(self, req: LoglikelihoodRequest) -> list[ContinuationScore]:
        body = {"model": self.model, "prompt": [req.context + c for c in req.continuations], "echo": True,
                "max_tokens": 0, "logprobs": 1, "temperature": 0}
        choices = sorted(self._request("POST", "/completions", body)["choices"], key=lambda c: c.get("index", 0))
        return [_continuation_score(c.get("logprobs"), len(req.context), self.base_url) for c in choices]

    def generate(self, requests: Sequence[GenerateRequest], bar=None) -> list[str]:
        return self._map(self._generate_one, requests, bar)

    def _generate_one(self, req: GenerateRequest) -> str:
        body = {"model": self.model, "prompt": req.context, "max_tokens": req.max_new_tokens, "temperature": 0}
        if req.stop:
            body["stop"] = list(req.stop[:MAX_STOPS])
        text = self._request("POST", "/completions", body)["choices"][0]["text"]
        return cut_at_stop(text, req.stop)


def _continuation_score(logprobs: Optional[dict], boundary: int, url: str) -> ContinuationScore:
    if not logprobs or logprobs.get("token_logprobs") is None or logprobs.get("text_offset") is None:
        raise UserError(f"{url}: the server returns no prompt log-probabilities (echo + logprobs); "
                        "score this model with --mode generate")
    total, n, greedy = 0.0, 0, True
    for offset, lp, top in zip(logprobs["text_offset"], logprobs["token_logprobs"], logprobs["top_logprobs"] or []):
        if offset < boundary or lp is None:
            continue
        total += lp
        n += 1
        greedy = greedy and bool(top) and lp >= max(top.values()) - 1e-6
    if n == 0:
        raise UserError(f"{url}: no token of the continuation came back; the server must echo the prompt")
    return total, n, greedy


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return json.loads(exc.read())["error"]["message"]
    except Exception:  # any body at all: the status line says enough
        return exc.reason or ""


def _build(options: BackendOptions, runs: list[ModelArgs]) -> OpenAIBackend:
    args = runs[0]
    if options.api_key is not None and not options.api_key.strip():  # an unset shell variable: not "no key"
        raise UserError("--api_key is empty; give the key, or leave the flag out (then $OPENAI_API_KEY)")
    if not options.base_url:
        raise UserError("--backend openai: give --base_url, e.g. http://127.0.0.1:8000/v1")
    if options.concurrency < 1 or options.max_retries < 0 or options.request_timeout <= 0:
        raise UserError("--concurrency must be >= 1, --max_retries >= 0 and --request_timeout > 0")
    if args.lora_model or args.resize_emb:
        raise UserError("--lora_model/--resize_emb apply to --backend hf; serve the adapter and name it with --model")
    tokenizer = None
    if args.template_name == TOKENIZER_TEMPLATE:
        if not args.tokenizer_path:
            raise UserError("--template_name tokenizer with --backend openai: give --tokenizer_path")
        from .loading import load_tokenizer

        tokenizer = load_tokenizer(ModelArgs(model=args.model, tokenizer_path=args.tokenizer_path), None)
    return OpenAIBackend(options.base_url, args.model, api_key=options.api_key or os.environ.get("OPENAI_API_KEY"),
                         concurrency=options.concurrency, max_retries=options.max_retries,
                         timeout=options.request_timeout, tokenizer=tokenizer)


KIND = BackendKind(name="openai", summary="an OpenAI-compatible server (--model is then the id it serves)",
                   build=_build, local_weights=False,
                   takes=frozenset({"base_url", "api_key", "concurrency", "max_retries", "request_timeout"}))
