"""Judged items per second against ``aimed-eval serve``, at judge concurrency 1 and 8.

The judge is the tests' tiny one: the tiny Llama fully fine-tuned by the project's ``sft``
stage on the medterm rubric's prompts (tests/harness/test_judge_e2e.py), so every reply
is a readable judgement (``parse_retries: 0``: one request an item). It is served by
``aimed-eval serve --max_concurrency 8`` on 127.0.0.1; the items are real medterm terms
with their reference definitions as the answers. No response cache: every item is asked.

    python benchmarks/judge_bench.py [--items 64] [--judge_checkpoint DIR]

Prints, for each concurrency, the wall time, items per second, the ratio to concurrency 1
and the mean request latency. On 2 CPU cores the server's model is the bottleneck: a
concurrent client overlaps the HTTP round trips and prompt encoding with generation,
not generation with generation.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIMED_DATA", REPO.parent / "shared" / "data"))
JUDGEMENT = "准确性：[[4]]\n完整性：[[3]]\n安全性：[[5]]\n流畅性：[[4]]\n危险：否\n理由：与参考答案基本一致"


def _terms(start: int, count: int) -> list[dict]:
    lines = (DATA / "medterm" / "term_definitions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines[start:start + count]]


def train_judge(root: Path) -> Path:
    """The tests' tiny judge (see the module docstring)."""
    import csv

    from aimed.harness.judge.records import item_fields
    from aimed.harness.judge.rubric import load_rubric
    from aimed.harness.tinymodel import build_tiny_model
    from aimed.trainers import load_stage_config, train_stage

    with (DATA / "cmexam" / "val.csv").open(encoding="utf-8-sig", newline="") as f:
        texts = [r["Question"] + "\n" + r["Options"] + "\n答案：" + r["Answer"] for _, r in zip(range(400), csv.DictReader(f))]
    base = build_tiny_model(root / "tiny", texts, arch="llama", seed=0)
    rubric = load_rubric("medterm")
    rows = []
    for item in _terms(0, 16):
        for answer in (item["definition"], "不知道", item["definition"][:10]):
            record = {"doc": {"question": item["term"], "target": item["definition"]}, "resps": answer}
            rows.append({"instruction": rubric.render(item_fields(record)), "input": "", "output": JUDGEMENT})
    data = root / "judge_sft.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = load_stage_config("sft", None, dict(
        model=str(base), output_dir=str(root / "sft"), train_files=[str(data)], finetune="full", learning_rate=3e-3,
        max_steps=80, per_device_train_batch_size=8, max_length=1024, only_cpu=True, eval_tasks=[], seed=0,
        lr_scheduler_type="constant", save_steps=1000, logging_steps=10, print_logs=False))
    return train_stage("sft", config).final


def serve(checkpoint: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "aimed.harness.cli", "serve", "--model", str(checkpoint), "--port",
                             str(port), "--max_concurrency", "8", "--served_model_name", "tiny-judge"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return f"http://127.0.0.1:{port}/v1", proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the judge server did not come up in 120 s")


def measure(url: str, items: int, concurrency: int) -> dict:
    from aimed.harness.cache import NoCache
    from aimed.harness.judge.asking import ask_all
    from aimed.harness.judge.client import build_judge
    from aimed.harness.judge.config import JudgeConfig
    from aimed.harness.judge.parse import read_pointwise
    from aimed.harness.judge.records import item_fields
    from aimed.harness.judge.rubric import load_rubric

    rubric = load_rubric("medterm")
    prompts = [rubric.render(item_fields({"doc": {"question": t["term"], "target": t["definition"]},
                                          "resps": t["definition"]})) for t in _terms(100, items)]
    config = JudgeConfig(base_url=url, concurrency=concurrency, parse_retries=0, max_new_tokens=64)
    client = build_judge(config, lambda folder: "")
    client.ask(prompts[0])  # warm the server (first-request allocations) outside the timing
    started = time.perf_counter()
    judged, stats = ask_all(client, NoCache(), rubric, prompts, lambda i, text: read_pointwise(text, rubric),
                            progress=False)
    seconds = time.perf_counter() - started
    cost = stats.to_dict()
    return {"concurrency": concurrency, "items": items, "seconds": seconds, "items_per_s": items / seconds,
            "latency_mean_s": cost["latency_mean_s"], "invalid": cost["invalid"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--judge_checkpoint", type=Path, default=None, help="a trained tiny judge (default: train one)")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = ns.judge_checkpoint or train_judge(Path(tmp))
        url, proc = serve(checkpoint)
        try:
            rows = [measure(url, ns.items, c) for c in (1, 8)]
        finally:
            proc.terminate()  # stopped by its PID
            proc.wait(timeout=30)
    print(f"{'concurrency':>11}  {'items':>5}  {'seconds':>8}  {'items/s':>8}  {'vs 1':>5}  {'latency s':>9}  invalid")
    for r in rows:
        print(f"{r['concurrency']:>11}  {r['items']:>5}  {r['seconds']:>8.2f}  {r['items_per_s']:>8.2f}  "
              f"{r['items_per_s'] / rows[0]['items_per_s']:>5.2f}  {r['latency_mean_s']:>9.3f}  {r['invalid']}")


if __name__ == "__main__":
    main()
