"""``--backend`` and the engine flags: which engine scores (``models/backend.py`` lists them
from the ``aimed.backends`` entry points: ``hf`` in-process, ``vllm`` on GPUs, ``openai``
for any OpenAI-compatible server, and any a plugin adds)."""

from __future__ import annotations

import argparse

from .. import flag_types
from ..models.backend import DEFAULT_BACKEND, BackendOptions, backend_names


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=backend_names(), default=DEFAULT_BACKEND,
                   help="hf: load the checkpoint here (default); vllm: load it into vLLM on the GPU "
                        "(pip install 'aimed-eval[vllm]'); openai: an OpenAI-compatible server "
                        "(--model is then the id it serves); or a backend a plugin installs")
    g.add_argument("--base_url", default=None, type=flag_types.http_url, help="the server's API root, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api_key", default=None, help="the server's key (default: $OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=flag_types.positive_int, default=8, help="requests in flight at once (default: 8)")
    g.add_argument("--max_retries", type=flag_types.non_negative_int, default=5, help="retries on 429, 5xx and lost connections")
    g.add_argument("--request_timeout", type=float, default=120.0, help="seconds a request may take")


def backend_options(ns: argparse.Namespace) -> BackendOptions:
    return BackendOptions.from_namespace(ns)
