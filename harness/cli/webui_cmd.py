"""``aimed-eval webui --ui streamlit|gradio``: a chat page in the browser (the original
``web_demo.py`` and ``gradio_demo.py``), with streamed answers, history and a clear button.

Bound to 127.0.0.1 unless ``--host`` says otherwise: the page drives a private checkpoint.
The folders, flags, port and the ui's package are checked before any server starts, so a
mistake is one line and exit 2. ``--ui streamlit`` then becomes ``streamlit run
streamlit_app.py -- FLAGS`` (``exec`` on POSIX, so Ctrl-C or SIGTERM stops the server with
nothing left behind); ``--ui gradio`` loads the model here and serves until stopped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from .. import flag_types
from ..errors import UserError
from ..help_text import user_help
# the module, not its names: common imports the chat command's flags from this package,
# so when the streamlit app imports common first, this module runs while common is half-built
from ..webui import common

DEFAULT_PORT = {"streamlit": 8501, "gradio": 7860}


def add_parser(sub) -> None:
    p = sub.add_parser("webui", help="chat with a checkpoint in the browser (streamlit or gradio)",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ui", choices=tuple(DEFAULT_PORT), default="streamlit", help="default: streamlit")
    common.add_app_flags(p)
    g = p.add_argument_group("server")
    g.add_argument("--host", default="127.0.0.1", type=flag_types.host, help="address to bind (default: 127.0.0.1, this machine only)")
    g.add_argument("--port", type=flag_types.port, default=None, help="port (default: 8501 streamlit, 7860 gradio)")
    p.set_defaults(func=run)


def check_port(host: str, port: int) -> None:
    import socket

    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port between 1 and 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UserError(f"--host {host}: not an address of this machine; use 127.0.0.1 or 0.0.0.0") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # the servers set SO_REUSEADDR too, so a port in TIME_WAIT is not "in use"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                            "pick another --port") from None


def run(ns: argparse.Namespace) -> int:
    if importlib.util.find_spec(ns.ui) is None:
        raise UserError(f"--ui {ns.ui} needs {ns.ui}, which is not installed: {common.INSTALL}")
    port = ns.port or DEFAULT_PORT[ns.ui]
    check_port(ns.host, port)
    common.preflight(ns)
    return serve_streamlit(ns, port) if ns.ui == "streamlit" else serve_gradio(ns, port)


def streamlit_command(ns: argparse.Namespace, port: int) -> list[str]:
    app = Path(__file__).resolve().parents[1] / "webui" / "streamlit_app.py"
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.address", ns.host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.runOnSave", "false", "--client.toolbarMode", "minimal", "--", *common.app_argv(ns)]


def serve_streamlit(ns: argparse.Namespace, port: int) -> int:
    cmd = streamlit_command(ns, port)
    print(f"webui (streamlit): starting on http://{ns.host}:{port}; Ctrl-C stops it", flush=True)
    if os.name == "posix":
        sys.stdout.flush()
        os.execv(cmd[0], cmd)  # does not return
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def serve_gradio(ns: argparse.Namespace, port: int) -> int:
    import signal
    import threading

    from ..webui.gradio_app import build_demo

    demo = build_demo(common.load_chat_model(ns), ns.max_history)
    demo.launch(server_name=ns.host, server_port=port, prevent_thread_lock=True, share=False,
                ssr_mode=False, show_error=True, quiet=True)
    print(f"webui (gradio): http://{ns.host}:{port}  (model {ns.model}; Ctrl-C stops it)", flush=True)
    # serve until Ctrl-C or SIGTERM, then close the server so the port is freed at once
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    demo.close()
    print("webui stopped", flush=True)
    return 0
