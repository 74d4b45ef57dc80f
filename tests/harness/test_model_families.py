"""The base-model families teams start from, each as a tiny random checkpoint of its own
transformers class (harness/tinymodel.py), through every path a checkpoint takes: scored
(loglikelihood and generation, with its family's chat template), trained by the sft stage
(LoRA) and scored with that adapter (--lora_model), and served over HTTP."""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from aimed.harness.templates import render_prompt
from aimed.harness.tinymodel import FAMILIES

ARCHS = list(FAMILIES)  # llama qwen2 qwen3 glm mistral baichuan
SFT = [{"instruction": f"第{i}题：高血压患者饮食应注意什么？", "input": "", "output": "低盐低脂，清淡饮食。"}
       for i in range(4)]
_BUILT: dict[str, Path] = {}


@pytest.fixture
def family(request, arch, data_dir, tmp_path_factory) -> tuple[Path, str]:
    """(the tiny checkpoint of ``arch``, its chat template); llama and qwen2 are the shared ones."""
    if arch in ("llama", "qwen2"):
        return request.getfixturevalue(f"tiny_{arch}"), FAMILIES[arch].template
    if arch not in _BUILT:
        from aimed.harness.tinymodel import build_tiny_model

        with (data_dir / "cmexam" / "val.csv").open(encoding="utf-8-sig", newline="") as f:
            texts = [r["Question"] + "\n" + r["Options"] + "\n答案：" + r["Answer"]
                     for _, r in zip(range(300), csv.DictReader(f))]
        _BUILT[arch] = build_tiny_model(tmp_path_factory.mktemp("families") / arch, texts, arch=arch, seed=2)
    return _BUILT[arch], FAMILIES[arch].template


def _run(cli, model: Path, out: Path, *extra) -> dict:
    code, _, err = cli("run", "--model", model, "--output_dir", out, "--only_cpu", "--no_cache", "--no_index",
                       "--quiet", *extra)
    assert code == 0, err
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def _samples(run_dir: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("arch", ARCHS)
def test_family_scores_by_loglikelihood_and_generation(cli, family, arch, tmp_path):
    model, template = family
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"][0].lower().startswith(FAMILIES[arch].config[:-6].lower())
    mcq = _run(cli, model, tmp_path / "mcq", "--tasks", "demo_mcq", "--limit", "4")
    assert 0 <= mcq["results"]["demo_mcq"]["acc,none"] <= 1 and len(_samples(tmp_path / "mcq", "demo_mcq")) == 4
    gen = _run(cli, model, tmp_path / "gen", "--tasks", "demo_medterm", "--limit", "2", "--mode", "generate",
               "--template_name", template)
    assert gen["aimed"]["options"]["template_name"] == template
    rows = _samples(tmp_path / "gen", "demo_medterm")
    opening = render_prompt(template, "USER").split("USER")[0]  # the template's text before the question
    assert len(rows) == 2 and all(r["arguments"]["context"].startswith(opening) for r in rows)
    assert all(isinstance(r["resps"], str) for r in rows)


@pytest.mark.parametrize("arch", ARCHS)
def test_family_sft_lora_adapter_scores_with_lora_model(cli, family, arch, tmp_path):
    model, template = family
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in SFT), encoding="utf-8")
    code, out, err = cli("train", "--stage", "sft", "--model", model, "--train_files", data,
                         "--template_name", template, "--finetune", "lora", "--max_steps", "2",
                         "--learning_rate", "0.05", "--max_length", "64", "--per_device_train_batch_size", "4",
                         "--eval_tasks", "", "--only_cpu", "true", "--print_logs", "false",
                         "--output_dir", tmp_path / "sft")
    assert code == 0, err
    (adapter,) = [p.parent for p in (tmp_path / "sft").glob("checkpoint-*/adapter_config.json")]
    assert (adapter / "adapter_model.safetensors").exists()
    base = _run(cli, model, tmp_path / "base", "--tasks", "demo_mcq", "--limit", "4")
    tuned = _run(cli, model, tmp_path / "tuned", "--tasks", "demo_mcq", "--limit", "4", "--lora_model", adapter)
    assert tuned["aimed"]["model"]["adapters"] == [str(adapter.resolve())] and not base["aimed"]["model"]["adapters"]
    # the adapter changed the model: the options' log-likelihoods moved
    assert [r["resps"] for r in _samples(tmp_path / "tuned", "demo_mcq")] != \
        [r["resps"] for r in _samples(tmp_path / "base", "demo_mcq")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("arch", ARCHS)
def test_family_serves_a_chat_request(family, arch, monkeypatch):
    """`aimed-eval serve` in this process (a thread), stopped through the server it made."""
    from aimed.harness.cli import main
    from aimed.harness.server import app

    model, template = family
    made = []
    real = app.make_server
    monkeypatch.setattr(app, "make_server", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    port = _free_port()
    argv = ["serve", "--model", str(model), "--only_cpu", "--template_name", template, "--port", str(port),
            "--max_new_tokens", "8"]
    thread = threading.Thread(target=main, args=(argv,), daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while not made and time.time() < deadline and thread.is_alive():
            time.sleep(0.05)
        assert made, "the server did not start"
        body = json.dumps({"model": model.name, "max_tokens": 4, "temperature": 0,
                           "messages": [{"role": "user", "content": "发热怎么办？"}]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            reply = json.loads(r.read())
        message = reply["choices"][0]["message"]
        assert r.status == 200 and message["role"] == "assistant" and isinstance(message["content"], str)
        assert reply["model"] == model.name
    finally:
        if made:
            made[0].shutdown()
        thread.join(timeout=30)
    assert not thread.is_alive()
