"""A real HTTP judge endpoint on loopback for the judge tests: OpenAI chat completions whose
judgement is computed from the prompt (so it is the same every time it is asked), and
which misbehaves on purpose: every third request answers 429 or 500, and the first
request of every fifth item hangs past the client's timeout.

It logs every request with its item (a hash of the prompt) and what it did with it (ok:
a judgement delivered, 429, 500, hang), so a test can tell that the faults happened and
whether an item was asked again after its judgement was delivered.

``--hold_until FILE`` holds every answer until FILE exists (a pipeline test makes scoring
wait for training to end, so a pipeline whose training waited for scoring would never
finish).

Run as ``python flaky_judge.py PORT [--no_faults] [--log FILE] [--hold_until FILE]``; it
prints ``ready`` once it listens, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "flaky-judge"
HANG_SECONDS = 3.0  # longer than the tests' client timeout
POSITION_BIAS_CHARS = 3  # pairwise: answers this close in length go to whichever is shown first


def judgement(prompt: str) -> str:
    """Scores from how much of the reference the answer shares (a stand-in for a judge's
    reading), in the pointwise format; a pairwise prompt gets the longer answer, or, when
    the two are within POSITION_BIAS_CHARS, the one shown first (a position-biased judge);
    a cascade prompt gets the first option letter its answer names."""
    answer = _field(prompt, "【模型回答】") or _field(prompt, "【模型作答】")
    if "【回答A】" in prompt:
        a, b = _field(prompt, "【回答A】"), _field(prompt, "【回答B】")
        if abs(len(a) - len(b)) <= POSITION_BIAS_CHARS:  # too close to call: this judge picks the first shown
            return "结论：[[A]]\n理由：相差不大"
        return f"结论：[[{'A' if len(a) > len(b) else 'B'}]]\n理由：更完整"
    if "【选项】" in prompt and "【模型作答】" in prompt:
        letters = re.findall(r"[A-E]", answer)
        return f"答案：[[{letters[0] if letters else '无'}]]"
    reference = _field(prompt, "【参考答案】")
    shared = len(set(answer) & set(reference)) / max(1, len(set(reference)))
    score = 1 + round(4 * shared)
    return (f"准确性：[[{score}]]\n完整性：[[{max(1, score - 1)}]]\n安全性：[[5]]\n流畅性：[[4]]\n危险：否\n"
            f"理由：与参考答案重合{shared:.0%}")


def _field(prompt: str, label: str) -> str:
    m = re.search(re.escape(label) + r"(.*?)(?:\n【|\n评分标准|\n请严格|$)", prompt, re.DOTALL)
    return m.group(1).strip() if m else ""


class State:
    def __init__(self, faults: bool, log_path: str | None, hold_until: str | None = None):
        self.faults = faults
        self.log_path = log_path
        self.hold_until = hold_until
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}  # item -> requests so far
        self.items = 0
        self.requests = 0

    def plan(self, item: str) -> str:
        """What to do with this request: ok, 429, 500 or hang. Every third request fails (429 and
        500 in turn); the first request of every fifth item hangs."""
        with self.lock:
            self.requests += 1
            count, n = self.requests, self.seen.get(item, 0)
            self.seen[item] = n + 1
            if n == 0:
                self.items += 1
            index = self.items if n == 0 else 0
        if not self.faults:
            return "ok"
        if index and index % 5 == 0:
            return "hang"
        if count % 3 == 0:
            return "429" if (count // 3) % 2 else "500"
        return "ok"

    def log(self, item: str, action: str) -> None:
        """One line a request: its item and what was done (ok: a judgement delivered)."""
        if self.log_path:
            with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"item": item, "action": action, "t": time.time()}) + "\n")


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, payload: dict) -> None:
            body = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "no route"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            prompt = body["messages"][-1]["content"]
            item = hashlib.sha256(prompt.split("\n\n上面的输出无法读取")[0].encode()).hexdigest()[:16]
            action = state.plan(item)
            state.log(item, action)
            while state.hold_until and not os.path.exists(state.hold_until):
                time.sleep(0.1)
            if action == "hang":
                time.sleep(HANG_SECONDS)
                return  # the client has given up; nothing is delivered
            if action in ("429", "500"):
                self._send(int(action), {"error": {"message": "try again later" if action == "429" else "boom"}})
                return
            text = judgement(prompt)
            self._send(200, {"id": "x", "object": "chat.completion", "model": MODEL,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(text),
                                       "total_tokens": len(prompt) + len(text)}})

    return Handler


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--no_faults", action="store_true")
    ap.add_argument("--log", default=None)
    ap.add_argument("--hold_until", default=None)
    ns = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", ns.port), make_handler(State(not ns.no_faults, ns.log, ns.hold_until)))
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
