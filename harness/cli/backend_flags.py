"""``--backend``: score in-process (``hf``), on vLLM's engine (``vllm``, GPUs) or through an
OpenAI-compatible server (``openai``)."""

from __future__ import annotations

import argparse
import os

from .. import flag_types
from ..errors import UserError

BACKENDS = ("hf", "vllm", "openai")


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend")
    g.add_argument("--backend", choices=BACKENDS, default="hf",
                   help="hf: load the checkpoint here (default); vllm: load it into vLLM on the GPU "
                        "(pip install 'aimed-eval[vllm]'); openai: an OpenAI-compatible server "
                        "(--model is then the id it serves)")
    g.add_argument("--base_url", default=None, type=flag_types.http_url, help="the server's API root, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api_key", default=None, help="the server's key (default: $OPENAI_API_KEY)")
    g.add_argument("--concurrency", type=flag_types.positive_int, default=8, help="requests in flight at once (default: 8)")
    g.add_argument("--max_retries", type=flag_types.non_negative_int, default=5, help="retries on 429, 5xx and lost connections")
    g.add_argument("--request_timeout", type=float, default=120.0, help="seconds a request may take")


def make_backend(ns: argparse.Namespace, runs: list):
    """The backend ``--backend`` names; None for ``hf`` (``evaluate`` loads it itself).
    ``runs``: the model arguments of each run (one adapter each when several)."""
    if ns.backend in ("hf", "vllm") and ns.base_url:
        raise UserError("--base_url is for --backend openai; add it or drop --base_url")
    if ns.backend == "hf":
        return None
    if ns.backend == "vllm":
        from ..models.vllm_backend import VLLMBackend, import_vllm

        import_vllm()  # the missing-package message before anything else
        return VLLMBackend(runs[0], adapter_folders=[a for r in runs for a in r.lora_model])
    if not ns.base_url:
        raise UserError("--backend openai: give --base_url, e.g. http://127.0.0.1:8000/v1")
    if ns.concurrency < 1 or ns.max_retries < 0 or ns.request_timeout <= 0:
        raise UserError("--concurrency must be >= 1, --max_retries >= 0 and --request_timeout > 0")
    if ns.lora_model or ns.resize_emb:
        raise UserError("--lora_model/--resize_emb apply to --backend hf; serve the adapter and name it with --model")
    from ..models.openai_api import OpenAIBackend

    tokenizer = None
    if ns.template_name == "tokenizer":
        if not ns.tokenizer_path:
            raise UserError("--template_name tokenizer with --backend openai: give --tokenizer_path")
        from ..models.args import ModelArgs
        from ..models.loading import load_tokenizer

        tokenizer = load_tokenizer(ModelArgs(model=ns.model, tokenizer_path=ns.tokenizer_path), None)
    return OpenAIBackend(ns.base_url, ns.model, api_key=ns.api_key or os.environ.get("OPENAI_API_KEY"),
                         concurrency=ns.concurrency, max_retries=ns.max_retries, timeout=ns.request_timeout,
                         tokenizer=tokenizer)
