"""Scoring speed: aimed-eval's HF backend against lm-evaluation-harness 0.4.13 (issue 5).

One invocation, one machine, the same checkpoint and the same items for both engines:

    OMP_NUM_THREADS=1 python benchmarks/scoring_bench.py [--items 500] [--gen_items 273]
        [--workloads a,b,c] [--skip_lm_eval] [--device cpu] [--work_dir DIR]

Checkpoint (``bench_checkpoint.py``): Qwen2-shaped, random weights, hidden 512, 8 layers,
151,936-token vocabulary, fp32. Workloads: (a) CMExam val ``loglikelihood`` multiple
choice, (b) CMExam val ``cloze``, (c) ``medterm`` greedy generation, 64 new tokens at
most. lm-eval runs its ``hf`` model (``add_bos_token=False``) on the configs
``aimed-eval export-lm-eval`` writes for the same items, so both score the same prompts.

Printed: items/s of each engine and the ratio; agreement (a: the same argmax letter,
b: the same argmax option, raw and per-character normalised, c: the same text); max
|difference| of log-likelihoods; the machine's fp32 matmul throughput and (a)'s model
FLOPs utilisation (2 x non-embedding parameters x prompt tokens / time / throughput);
the warm rerun from the response cache against the cold run (``evaluate()``, model load
included); peak memory of each engine on each workload (its own process).
The same threads (``OMP_NUM_THREADS``, default 1) for both engines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORKLOADS = {"a": "loglikelihood MC (CMExam val)", "b": "cloze MC (CMExam val)", "c": "medterm generation"}


def matmul_gflops(threads: int, n: int = 3072, repeat: int = 3) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = min(_timed(lambda: torch.matmul(a, b)) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def child(engine: str, workload: str, a, out: Path, **extra) -> dict:
    cmd = [sys.executable, str(HERE / "bench_workload.py"), engine, workload, "--ckpt", str(a.ckpt),
           "--export", str(a.export), "--items", str(a.gen_items if workload == "c" else a.items),
           "--device", a.device, "--threads", str(a.threads), "--batch_size", str(a.batch_size),
           "--lm_eval_batch_size", str(a.lm_eval_batch_size), "--out", str(out)]
    for k, v in extra.items():
        cmd += [f"--{k}", str(v)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if a.quiet else None)
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_seconds"] = time.perf_counter() - started
    return result


def agreement(workload: str, ours: list, theirs: list, options: list) -> dict:
    if workload == "c":
        return {"same_text": sum(x == y for x, y in zip(ours, theirs)) / len(ours)}
    argmax = lambda xs: max(range(len(xs)), key=lambda i: (xs[i], -i))  # noqa: E731
    raw = [argmax([r[0] for r in o]) == argmax([r[0] for r in t]) for o, t in zip(ours, theirs)]
    diff = max(abs(x[0] - y[0]) for o, t in zip(ours, theirs) for x, y in zip(o, t))
    out = {"same_choice": sum(raw) / len(raw), "max_abs_dll": diff}
    if workload == "b":
        per_char = [argmax([r[0] / max(1, len(c)) for r, c in zip(o, opts)]) ==
                    argmax([r[0] / max(1, len(c)) for r, c in zip(t, opts)])
                    for o, t, opts in zip(ours, theirs, options)]
        out["same_choice_per_char"] = sum(per_char) / len(per_char)
    return out


def export_configs(a) -> None:
    from aimed.harness.export_lm_eval import export

    export("cmexam", a.export / "loglikelihood", mode="loglikelihood", limit=a.items)
    export("cmexam", a.export / "cloze", mode="cloze", limit=a.items)
    export("medterm", a.export / "generate", limit=a.gen_items)


def options_of(a) -> list[list[str]]:
    docs = (a.export / "cloze" / "data" / "aimed_cmexam.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(d)["choices"] for d in docs]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=500, help="CMExam val items for (a) and (b)")
    p.add_argument("--gen_items", type=int, default=273, help="medterm items for (c) (273: all)")
    p.add_argument("--workloads", default="a,b,c")
    p.add_argument("--skip_lm_eval", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch_size", default="auto", help="ours")
    p.add_argument("--lm_eval_batch_size", type=int, default=4,
                   help="lm-eval's fastest of 1, 4, 8, 16 on 40 items of (a) here (12.0 s at 4 and 8, 14.4 s at 1 and 16)")
    p.add_argument("--work_dir", type=Path, default=Path("/tmp/aimed_scoring_bench"))
    p.add_argument("--no_warm", action="store_true", help="skip the cold/warm rerun")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    a.threads = int(os.environ.get("OMP_NUM_THREADS") or 1)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)  # the children: both engines alike
    data = Path(os.environ.setdefault("AIMED_DATA", str(HERE.parent.parent / "shared" / "data")))
    a.work_dir.mkdir(parents=True, exist_ok=True)
    a.export = a.work_dir / "export"
    workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]

    import torch

    from bench_checkpoint import SHAPE, VOCAB, build

    print(f"threads {a.threads} (OMP_NUM_THREADS, torch.set_num_threads in every process); "
          f"torch {torch.__version__}; load average at start {os.getloadavg()[0]:.2f}")
    a.ckpt = build(a.work_dir / "ckpt", data)
    print(f"checkpoint {a.ckpt}: Qwen2, vocab {VOCAB}, {SHAPE}")
    export_configs(a)
    gflops = matmul_gflops(a.threads)
    print(f"fp32 matmul (3072x3072 @ 3072x3072, best of 3): {gflops:.1f} GFLOP/s")
    summary: dict = {"threads": a.threads, "matmul_gflops": gflops, "workloads": {}}
    for w in workloads:
        row: dict = {"aimed": child("aimed", w, a, a.work_dir / f"aimed_{w}.json")}
        ours = row["aimed"]
        print(f"\n({w}) {WORKLOADS[w]}: {ours['items']} items")
        print(f"  aimed-eval  {ours['items'] / ours['seconds']:8.2f} items/s  ({ours['seconds']:.1f} s; "
              f"peak memory +{ours['rss_peak_delta_mb']:.0f} MB over {ours['rss_start_mb']:.0f} MB; "
              f"process maxrss {ours['maxrss_mb']:.0f} MB)")
        if w == "a":
            flops = 2 * ours["non_embedding_params"] * ours["tokens"]
            row["mfu"] = flops / ours["seconds"] / 1e9 / gflops
            done = 2 * ours["non_embedding_params"] * ours["executed_tokens"]
            row["mfu_executed"] = done / ours["seconds"] / 1e9 / gflops
            print(f"  model FLOPs: 2 x {ours['non_embedding_params'] / 1e6:.1f}M non-embedding params x "
                  f"{ours['tokens']} prompt tokens = {flops / 1e12:.2f} TFLOP -> "
                  f"{flops / ours['seconds'] / 1e9:.1f} GFLOP/s = {row['mfu']:.0%} of the matmul throughput")
            print(f"  counting the {ours['executed_tokens']} token positions the model ran (padding in, the shared "
                  f"instruction prefix once a batch): {done / ours['seconds'] / 1e9:.1f} GFLOP/s = "
                  f"{row['mfu_executed']:.0%}")
        if not a.skip_lm_eval:
            row["lm_eval"] = theirs = child("lm_eval", w, a, a.work_dir / f"lm_eval_{w}.json")
            ratio = (ours["items"] / ours["seconds"]) / (theirs["items"] / theirs["seconds"])
            row["ratio"] = ratio
            row["agreement"] = agreement(w, ours["per_item"], theirs["per_item"], options_of(a) if w == "b" else [])
            print(f"  lm-eval     {theirs['items'] / theirs['seconds']:8.2f} items/s  ({theirs['seconds']:.1f} s; "
                  f"peak memory +{theirs['rss_peak_delta_mb']:.0f} MB over {theirs['rss_start_mb']:.0f} MB; "
                  f"process maxrss {theirs['maxrss_mb']:.0f} MB; batch size {a.lm_eval_batch_size})")
            print(f"  ratio {ratio:.2f}x; agreement {json.dumps(row['agreement'])}")
        if w == "c":
            lengths = [len(t) for t in ours["per_item"]]
            print(f"  generated characters: mean {sum(lengths) / len(lengths):.1f}, "
                  f"{sum(n == 0 for n in lengths)} empty")
        for r in row.values():
            if isinstance(r, dict):
                r.pop("per_item", None)
        summary["workloads"][w] = row
    if not a.no_warm:
        summary["warm"] = warm_rerun(a, workloads[0] if workloads else "a")
    summary["load_average_end"] = os.getloadavg()[0]
    print(f"\nload average at end {summary['load_average_end']:.2f}")
    (a.work_dir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")


def warm_rerun(a, w: str) -> dict:
    """evaluate() twice on one response cache, each in a fresh process: cold, then warm."""
    import shutil

    cache = a.work_dir / "response_cache"
    shutil.rmtree(cache, ignore_errors=True)
    runs = {}
    for kind in ("cold", "warm"):
        runs[kind] = child(kind, w, a, a.work_dir / f"{kind}_{w}.json", cache_dir=cache,
                           run_dir=a.work_dir / f"run_{kind}")
    cold, warm = runs["cold"], runs["warm"]
    print(f"\nwarm rerun ({w}, evaluate() with the response cache, model load included):")
    print(f"  cold {cold['seconds']:.2f} s, warm {warm['seconds']:.3f} s in-process -> {cold['seconds'] / warm['seconds']:.0f}x; "
          f"whole processes (Python and torch start-up included) {cold['process_seconds']:.1f} s vs "
          f"{warm['process_seconds']:.1f} s -> {cold['process_seconds'] / warm['process_seconds']:.1f}x")
    print(f"  warm timings: {json.dumps(warm['timings'])}")
    return {"cold": cold, "warm": warm, "speedup": cold["seconds"] / warm["seconds"]}


if __name__ == "__main__":
    main()
