"""aimed-eval serve + the openai backend: the same choices as in-process scoring, and a
bounded load test on loopback."""

import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

KEY = "test-key"
N_ITEMS = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body, key=KEY, raw: bytes = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def server(tiny_llama):
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", "serve", "--model", str(tiny_llama),
                             "--only_cpu", "--template_name", "raw", "--port", str(port), "--api_key", KEY,
                             "--max_body_bytes", "65536", "--max_concurrency", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {proc.stdout.read()}")
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail(f"server not healthy after 120 s: {proc.communicate(timeout=30)[0][-2000:]}")
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def _choices(run_dir):
    with (run_dir / "samples_cmexam.jsonl").open(encoding="utf-8") as f:
        return {r["doc"]["id"]: r for r in map(json.loads, f)}


@pytest.mark.parametrize("mode", ["loglikelihood", "generate"])
def test_openai_backend_chooses_what_the_in_process_backend_chooses(cli, server, tiny_llama, tmp_path, mode):
    common = ["--tasks", "cmexam", "--limit", N_ITEMS, "--mode", mode, "--cache_dir", tmp_path / "cache",
              "--no_index", "--quiet"]
    code, _, err = cli("run", "--model", tiny_llama, "--only_cpu", "--dtype", "float32",
                       "--output_dir", tmp_path / "local", *common)
    assert code == 0, err
    code, _, err = cli("run", "--backend", "openai", "--base_url", server, "--api_key", KEY, "--model",
                       tiny_llama.name, "--concurrency", "4", "--output_dir", tmp_path / "remote", *common)
    assert code == 0, err
    local, remote = _choices(tmp_path / "local"), _choices(tmp_path / "remote")
    assert len(local) == len(remote) == N_ITEMS
    for doc_id, r in local.items():
        assert remote[doc_id]["filtered_resps"] == r["filtered_resps"], doc_id
        if mode == "loglikelihood":
            for (a, *_), (b, *_) in zip(r["resps"], remote[doc_id]["resps"]):
                assert abs(a - b) < 1e-4
        else:
            assert remote[doc_id]["resps"] == r["resps"]
    results = json.loads((tmp_path / "remote" / "results.json").read_text(encoding="utf-8"))
    assert results["config"]["model"] == "openai"
    assert results["aimed"]["model"]["fingerprint"] != \
        json.loads((tmp_path / "local" / "results.json").read_text(encoding="utf-8"))["aimed"]["model"]["fingerprint"]


def test_load_200_requests_16_clients_and_clean_4xx(server):
    url = server + "/chat/completions"
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "发热是什么？"}],
            "max_tokens": 8, "temperature": 0}
    latencies, statuses, lock = [], [], threading.Lock()
    todo = iter(range(200))

    def client():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            t0 = time.perf_counter()
            try:
                status, payload = _post(url, body)
                outcome = (status, bool(payload.get("choices")))
            except OSError as exc:  # a dropped or reset connection is a lost request: say which
                outcome = (repr(exc), False)
            with lock:
                latencies.append(time.perf_counter() - t0)
                statuses.append(outcome)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert len(statuses) == 200 and all(s == (200, True) for s in statuses), \
        [s for s in statuses if s != (200, True)][:5]
    q = statistics.quantiles(latencies, n=100)
    print(f"\nload: 200 requests, 16 clients, {wall:.2f} s, {200 / wall:.1f} req/s, "
          f"p50 {q[49] * 1000:.0f} ms, p90 {q[89] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms")

    assert _post(url, body, key="wrong")[0] == 401
    with pytest.raises(urllib.error.HTTPError) as no_key:  # /health is open to probes; the API is not
        urllib.request.urlopen(server + "/models", timeout=10)
    assert no_key.value.code == 401
    with urllib.request.urlopen(server.removesuffix("/v1") + "/health", timeout=10) as r:
        assert json.loads(r.read()) == {"status": "ok"}
    status, payload = _post(url, None, raw=json.dumps({**body, "pad": "x" * 100_000}).encode())
    assert status == 413 and "over the limit" in payload["error"]["message"]
    assert _post(url, {**body, "max_tokens": 10**6})[0] == 400
    assert _post(url, None, raw=b"{not json")[0] == 400
    assert _post(server + "/completions", {"prompt": 3})[0] == 400
    status, payload = _post(url, body)  # still serving
    assert status == 200 and payload["choices"][0]["message"]["role"] == "assistant"


def test_streamed_chat_equals_the_whole_reply(server):
    body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "高血压怎么治疗？"}],
            "max_tokens": 10, "temperature": 0}
    whole = _post(server + "/chat/completions", body)[1]["choices"][0]["message"]["content"]
    req = urllib.request.Request(server + "/chat/completions", data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    pieces, done = [], False
    with urllib.request.urlopen(req, timeout=60) as r:
        for line in r:
            line = line.decode().strip()
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                pieces.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
    assert done and len(pieces) > 2 and "".join(pieces).strip() == whole


def test_openai_backend_bad_input_is_one_line(cli, server, tmp_path):
    code, _, err = cli("run", "--backend", "openai", "--base_url", server, "--api_key", KEY, "--model", "nope",
                       "--tasks", "demo_mcq", "--output_dir", tmp_path / "r", "--no_index")
    assert code == 2 and "not served" in err and "tiny-llama" in err and "Traceback" not in err
    code, _, err = cli("run", "--backend", "openai", "--base_url", server, "--api_key", "wrong", "--model",
                       "tiny-llama", "--tasks", "demo_mcq", "--output_dir", tmp_path / "r", "--no_index")
    assert code == 2 and "401" in err
    code, _, err = cli("run", "--backend", "openai", "--base_url", f"http://127.0.0.1:{_free_port()}/v1",
                       "--max_retries", "0", "--model", "x", "--tasks", "demo_mcq", "--no_index",
                       "--output_dir", tmp_path / "r")
    assert code == 2 and "cannot reach the server" in err
    assert not (tmp_path / "r").exists()


def test_usage_counts_the_tokens_generated(server, tiny_llama):
    """completion_tokens is the number of tokens the model generated: never above max_tokens,
    and "length" exactly when it reached it (re-encoding the decoded text could count more)."""
    from aimed.harness.inference import ChatModel, GenerationConfig

    bot = ChatModel.load(str(tiny_llama), template_name="vicuna", only_cpu=True,
                         generation=GenerationConfig(max_new_tokens=4, temperature=0))
    counted: list = []
    text = "".join(bot.stream(bot.prompt("发热怎么办？"), bot.stops, counted))
    assert counted[0] == 4 and text  # the random tiny model never stops early on its own here
    for max_tokens in (1, 4, 7):
        body = {"model": "tiny-llama", "messages": [{"role": "user", "content": "发热怎么办？"}],
                "max_tokens": max_tokens, "temperature": 0}
        reply = _post(server + "/chat/completions", body)[1]
        used, finish = reply["usage"]["completion_tokens"], reply["choices"][0]["finish_reason"]
        assert 1 <= used <= max_tokens
        assert (finish == "length") == (used == max_tokens)
