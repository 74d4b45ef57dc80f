"""The HTTP side of ``aimed-eval serve``: OpenAI-compatible routes, limits and keys.

Standard library only (``ThreadingHTTPServer``): one thread a connection, the model
itself behind one lock, so concurrency buys overlap of I/O and JSON work, not parallel
forward passes. Limits protect the process: a request body over ``max_body_bytes`` gets
413, ``max_tokens`` over the limit 400, more than ``max_concurrency`` requests in flight
plus ``max_queue`` waiting get 429 (retry later), a missing or wrong key 401. A client's
mistake never takes the server down: every handler ends in a JSON error response.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Optional

from .engine import BadRequest, Engine, new_id


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024
    max_prompts: int = 64  # prompts in one /v1/completions request
    max_concurrency: int = 4
    max_queue: int = 64
    max_top_logprobs: int = 20


class Gate:
    """At most ``running`` requests at work and ``waiting`` queued; beyond that, refuse."""

    def __init__(self, running: int, waiting: int):
        self.slots = threading.BoundedSemaphore(running)
        self.capacity = running + waiting
        self.count = 0
        self.lock = threading.Lock()

    def enter(self) -> bool:
        with self.lock:
            if self.count >= self.capacity:
                return False
            self.count += 1
        self.slots.acquire()
        return True

    def leave(self) -> None:
        self.slots.release()
        with self.lock:
            self.count -= 1


def _number(body: dict, key: str, default, kind=float, low=None, high=None):
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise BadRequest(f"{key}: give a number")
    value = kind(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BadRequest(f"{key}: {value} is outside [{low}, {high}]")
    return value


def make_handler(engine: Engine, limits: Limits, api_key: Optional[str]):
    gate = Gate(limits.max_concurrency, limits.max_queue)

    class Handler(BaseHTTPRequestHandler):
        server_version = "aimed-eval"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: a load test would flood the terminal
            pass

        # ---- plumbing ---------------------------------------------------------------
        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def _authorised(self) -> bool:
            if not api_key:
                return True
            given = self.headers.get("Authorization", "")
            if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), api_key.encode()):
                return True
            self._error(401, "missing or wrong API key (Authorization: Bearer KEY)", "authentication_error")
            return False

        def _body(self) -> Optional[dict]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > limits.max_body_bytes:
                self.close_connection = True  # the unread body must not be parsed as a request
                self._error(413, f"request body of {length} bytes is over the limit of {limits.max_body_bytes}")
                return None
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._error(400, "the body is not valid JSON")
                return None
            if not isinstance(body, dict):
                self._error(400, "the body must be a JSON object")
                return None
            return body

        def _sse(self, events: Iterator[dict]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for event in events:
                self.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode("utf-8"))
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")

        # ---- routes -------------------------------------------------------------------
        def do_GET(self):
            if self.path.rstrip("/") == "/health":  # open to probes (load balancers): it tells nothing
                self._send(200, {"status": "ok"})
                return
            if not self._authorised():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, engine.models())
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self):
            if not self._authorised():
                return
            route = {"/v1/completions": self._completions,
                     "/v1/chat/completions": self._chat}.get(self.path.rstrip("/"))
            if route is None:
                self._error(404, f"no route {self.path}")
                return
            body = self._body()
            if body is None:
                return
            if not gate.enter():
                self._error(429, "too many requests in flight; retry later", "rate_limit_error")
                return
            try:
                route(body)
            except BadRequest as exc:
                self._error(400, str(exc))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client left
            except Exception as exc:  # a bug must not kill the server; the client learns of it
                self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
            finally:
                gate.leave()

        def _sampling(self, body: dict, default_max_tokens: int) -> dict[str, Any]:
            return {"max_tokens": _number(body, "max_tokens", default_max_tokens, int, 0, limits.max_tokens),
                    "temperature": _number(body, "temperature", 1.0, float, 0, 2),
                    "top_p": _number(body, "top_p", 1.0, float, 1e-6, 1),
                    "stop": engine.stops(body.get("stop")),
                    "seed": _number(body, "seed", None, int)}

        def _completions(self, body: dict) -> None:
            prompts = body.get("prompt")
            if isinstance(prompts, str):
                prompts = [prompts]
            if not (isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)):
                raise BadRequest("prompt: give a string or a list of strings")
            if len(prompts) > limits.max_prompts:
                raise BadRequest(f"prompt: {len(prompts)} prompts, more than {limits.max_prompts} a request")
            if _number(body, "n", 1, int, 1, 1) != 1:
                raise BadRequest("n: only 1 is supported")
            opts = self._sampling(body, 16)  # the completions API's default
            logprobs = _number(body, "logprobs", None, int, 0, limits.max_top_logprobs)
            echo = bool(body.get("echo", False))
            rid, created = new_id("cmpl"), int(time.time())
            if body.get("stream"):
                if len(prompts) != 1 or echo:
                    raise BadRequest("stream: one prompt and no echo")
                pieces = engine.stream(prompts[0], opts["max_tokens"], opts["temperature"], opts["top_p"],
                                       opts["stop"], opts["seed"])
                self._sse({"id": rid, "object": "text_completion", "created": created, "model": engine.model_name,
                           "choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None}]}
                          for p in pieces)
                return
            choices, usage = [], {"prompt_tokens": 0, "completion_tokens": 0}
            for i, prompt in enumerate(prompts):
                c = engine.complete(prompt, opts["max_tokens"], opts["temperature"], opts["top_p"], opts["stop"],
                                    echo, logprobs, opts["seed"])
                choices.append({"index": i, "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason})
                usage["prompt_tokens"] += c.prompt_tokens
                usage["completion_tokens"] += c.completion_tokens
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self._send(200, {"id": rid, "object": "text_completion", "created": created,
                             "model": engine.model_name, "choices": choices, "usage": usage})

        def _chat(self, body: dict) -> None:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                raise BadRequest("messages: give a non-empty list of {role, content}")
            if body.get("max_completion_tokens") is not None:
                body = {**body, "max_tokens": body["max_completion_tokens"]}
            opts = self._sampling(body, 256)
            prompt = engine.chat_prompt(messages)
            stops = engine.bot.stops + opts["stop"]
            rid, created = new_id("chatcmpl"), int(time.time())
            if body.get("stream"):
                pieces = engine.stream(prompt, opts["max_tokens"], opts["temperature"], opts["top_p"], stops,
                                       opts["seed"])
                head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": engine.model_name}
                first = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]}]
                rest = ({**head, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                        for p in pieces)
                tail = [{**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}]
                self._sse(_chain(first, rest, tail))
                return
            c = engine.complete(prompt, opts["max_tokens"], opts["temperature"], opts["top_p"], stops,
                                False, None, opts["seed"])
            self._send(200, {"id": rid, "object": "chat.completion", "created": created, "model": engine.model_name,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": c.text.strip()},
                                          "finish_reason": c.finish_reason}],
                             "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                                       "total_tokens": c.prompt_tokens + c.completion_tokens}})

    return Handler


def _chain(*parts):
    for part in parts:
        yield from part


def make_server(engine: Engine, host: str, port: int, limits: Limits = Limits(),
                api_key: Optional[str] = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(engine, limits, api_key), bind_and_activate=False)
    server.daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of more clients overflowed the accept
    # queue and the kernel dropped connections (a 1 s retransmit, now and then a lost request).
    server.request_queue_size = max(128, limits.max_concurrency + limits.max_queue)
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server
