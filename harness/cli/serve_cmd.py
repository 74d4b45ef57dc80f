"""``aimed-eval serve``: an OpenAI-compatible HTTP server over a checkpoint.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions`` (``logprobs`` and
``echo`` for prompt log-probabilities), ``GET /v1/models`` (with the checkpoint's
fingerprint, so the harness's cache never mixes two checkpoints served at one address),
``GET /health``; ``"stream": true`` streams server-sent events. Binds 127.0.0.1 unless
``--host`` says otherwise. Score it with ``aimed-eval run --backend openai --base_url
http://HOST:PORT/v1 --model NAME``.
"""

from __future__ import annotations

import argparse
import os

from .. import flag_types
from ..errors import UserError
from ..help_text import user_help
from ..flags.generation import add_generation_flags, generation_config
from ..flags.model import add_model_flags, model_args

KEY_ENV = "AIMED_API_KEY"


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a checkpoint over an OpenAI-compatible HTTP API",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_flags(p, template_default="vicuna")
    add_generation_flags(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", type=flag_types.host, help="address to bind (default: 127.0.0.1, this machine only)")
    g.add_argument("--port", type=flag_types.port, default=8000, help="default: 8000")
    g.add_argument("--served_model_name", default=None, help="the model id clients name (default: the folder's name)")
    g.add_argument("--api_key", default=None, help=f"require this key (default: ${KEY_ENV}; none: open)")
    g.add_argument("--max_concurrency", type=flag_types.positive_int, default=4, help="requests at work at once (default: 4)")
    g.add_argument("--max_queue", type=flag_types.non_negative_int, default=64, help="requests waiting beyond those; more get 429")
    g.add_argument("--max_tokens_limit", type=flag_types.positive_int, default=1024, help="largest max_tokens a request may ask")
    g.add_argument("--max_body_bytes", type=flag_types.positive_int, default=1 << 20, help="largest request body (default: 1 MiB)")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from ..cache import NoCache
    from ..evaluate import folder_hasher
    from ..models.fingerprint import checkpoint_fingerprint
    from ..inference import ChatModel
    from ..server.app import Limits, make_server
    from ..server.engine import Engine

    if ns.api_key is not None and not ns.api_key.strip():  # an unset shell variable: not "no key"
        raise UserError(f"--api_key is empty; give the key, or leave the flag out (then ${KEY_ENV}, else no key)")
    limits = Limits(max_body_bytes=ns.max_body_bytes, max_tokens=ns.max_tokens_limit,
                    max_concurrency=ns.max_concurrency, max_queue=ns.max_queue)
    args = model_args(ns)
    bot = ChatModel.from_args(args, system=ns.system_prompt, generation=generation_config(ns))
    name = ns.served_model_name or Path(ns.model.rstrip("/")).name
    info = bot.info
    fingerprint = checkpoint_fingerprint(info.model_folder, info.adapter_folders, args, info.dtype,
                                         folder_hasher(NoCache()))
    engine = Engine(bot, name, fingerprint)
    try:
        server = make_server(engine, ns.host, ns.port, limits, ns.api_key or os.environ.get(KEY_ENV))
    except OSError as exc:
        raise UserError(f"--host {ns.host} --port {ns.port}: cannot listen there ({exc.strerror}); "
                        "choose another port") from None
    host, port = server.server_address[:2]
    print(f"serving {name} on http://{host}:{port}/v1 (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
