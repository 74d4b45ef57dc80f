"""Several LoRA adapters of one base: one `aimed-eval run` vs one run an adapter (issue 5).

Builds (or reuses, with --base) a Qwen2-shaped base with random weights and a 151,936-token
vocabulary (hidden 512, 8 layers: about 155M parameters, 0.6 GB in fp32, so loading it
costs what loading a real checkpoint costs relative to its size), and --adapters LoRA
adapters with random weights (r=8 on every projection). Then it times, each as a
subprocess with a cold response cache, as a user would run them:

- separate: ``aimed-eval run --model BASE --lora_model A_i`` once for each adapter;
- one invocation: ``aimed-eval run --model BASE --lora_model A_1,...,A_n``;

and prints both wall times, the time saved, the base-load and adapter-swap seconds the
runs recorded, and whether every adapter's choices are the same both ways.

    OMP_NUM_THREADS=1 python benchmarks/multi_adapter_bench.py [--adapters 3] [--tasks demo_mcq]
        [--limit N] [--base DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VOCAB = 151_936
SHAPE = dict(hidden_size=512, intermediate_size=2816, num_hidden_layers=8, num_attention_heads=8,
             num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=False)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_base(out: Path, data: Path) -> Path:
    """A byte-level BPE tokenizer trained on a little CMExam text and a random Qwen2 body
    whose embedding and output layers have Qwen2's 151,936 rows."""
    if (out / "config.json").exists():
        return out
    import csv

    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from aimed.harness.tinymodel import train_tokenizer

    with (data / "cmexam" / "test_10.csv").open(encoding="utf-8-sig", newline="") as f:
        texts = [" ".join(row) for row in csv.reader(f)]
    tokenizer = train_tokenizer(texts, vocab_size=4000)
    config = Qwen2Config(vocab_size=VOCAB, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, **SHAPE)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_adapters(base: Path, root: Path, n: int) -> list[Path]:
    folders = [root / f"lora-{i + 1}" for i in range(n)]
    if all((f / "adapter_config.json").exists() for f in folders):
        return folders
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    for i, folder in enumerate(folders):
        torch.manual_seed(100 + i)
        peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, init_lora_weights=False))
        peft.save_pretrained(folder)
        model = peft.unload()  # the bare base again, for the next adapter
    return folders


def timed_run(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "aimed.harness.cli", "run", *argv], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"aimed-eval run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall


def _choices(run_dir: Path, tasks: list[str]) -> list:
    out = []
    for t in tasks:
        lines = (run_dir / f"samples_{t}.jsonl").read_text(encoding="utf-8").splitlines()
        out.append([json.loads(x)["filtered_resps"] for x in lines])
    return out


def _load_seconds(run_dir: Path) -> float:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["aimed"]["timings"]["load_seconds"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--adapters", type=int, default=3)
    ap.add_argument("--tasks", default="demo_mcq", help="tasks to score (default: demo_mcq, 24 items)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--base", type=Path, default=None, help="a base checkpoint to use instead of building one")
    ap.add_argument("--work", type=Path, default=None, help="folder for the checkpoints and runs (kept)")
    ns = ap.parse_args()
    data = Path(os.environ.get("AIMED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    work = ns.work or Path(tempfile.mkdtemp(prefix="aimed-multi-adapter-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    base = ns.base or build_base(work / "base", data)
    adapters = build_adapters(base, work / "adapters", ns.adapters)
    print(f"checkpoints ready in {time.perf_counter() - t:.1f} s: base {base}, {len(adapters)} adapters")

    env = {**os.environ, "AIMED_DATA": str(data)}
    common = ["--tasks", ns.tasks, "--only_cpu", "--dtype", "float32", "--no_cache", "--no_index", "--quiet"]
    if ns.limit:
        common += ["--limit", str(ns.limit)]
    stamp = time.strftime("%H%M%S")
    separate_dirs = [work / f"separate-{stamp}" / a.name for a in adapters]
    separate = [timed_run(["--model", str(base), "--lora_model", str(a), "--output_dir", str(d), *common], env)
                for a, d in zip(adapters, separate_dirs)]
    together_root = work / f"together-{stamp}"
    together = timed_run(["--model", str(base), "--lora_model", ",".join(map(str, adapters)),
                          "--output_dir", str(together_root), *common], env)

    tasks = [t.strip() for t in ns.tasks.split(",")]
    same = all(_choices(d, tasks) == _choices(together_root / a.name, tasks) for a, d in zip(adapters, separate_dirs))
    loads = [_load_seconds(together_root / a.name) for a in adapters]
    print(f"tasks: {ns.tasks}" + (f" (--limit {ns.limit})" if ns.limit else "") +
          f"; threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"separate runs ({len(adapters)} processes): " + " + ".join(f"{s:.1f}" for s in separate) +
          f" = {sum(separate):.1f} s")
    print(f"one invocation (--lora_model a,b,c):   {together:.1f} s")
    print(f"saved: {sum(separate) - together:.1f} s ({(1 - together / sum(separate)) * 100:.0f}%), "
          f"{sum(separate) / together:.2f}x")
    print(f"in the one invocation: base load {loads[0]:.2f} s, adapter swaps " +
          ", ".join(f"{x:.2f}" for x in loads[1:]) + " s; separate runs' loads: " +
          ", ".join(f"{_load_seconds(d):.2f}" for d in separate_dirs) + " s")
    print(f"same choices for every adapter both ways: {'yes' if same else 'NO'}")
    print(f"work folder: {work}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
