"""One engine on one workload, in its own process (``scoring_bench.py`` spawns it), so that
each figure of peak memory belongs to one workload and one engine alone.

    python benchmarks/bench_workload.py ENGINE WORKLOAD --ckpt DIR --export DIR --items N --out FILE.json

ENGINE: ``aimed`` (our HF backend through runner.run_task, no cache), ``lm_eval``
(lm-eval 0.4.13's HFLM through simple_evaluate on the exported config), ``cold`` /
``warm`` (``evaluate()`` with a response cache: the whole run, model load included).
Timed: from requests to scores, the model already loaded (cold/warm: all of evaluate()).
Memory: the process's resident set sampled every 5 ms by psutil; reported as the peak
during the timed part minus the resident set when it began, and the process's peak
(``ru_maxrss``) over its whole life.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

TASKS = {"a": ("cmexam", "loglikelihood"), "b": ("cmexam", "cloze"), "c": ("medterm", "generate")}


class PeakRSS:
    """Resident-set peak of this process while the block runs (psutil, every 5 ms)."""

    def __enter__(self):
        import psutil

        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def run_aimed(a, task_name: str, mode: str) -> dict:
    from aimed.harness.cache import NoCache
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.models.hf import HFBackend
    from aimed.harness.runner import RunOptions, run_task
    from aimed.harness.taskregistry import resolve_tasks

    backend = HFBackend(ModelArgs(model=a.ckpt, device=a.device, dtype="float32"), batch_size=a.batch_size,
                        fast=not a.plain)
    backend._use_fast()  # the one-off check, outside the timing
    executed = [0]  # token positions through the model, padding included (a shared prefix once a batch)
    backend.model.get_input_embeddings().register_forward_hook(
        lambda mod, inp, out: executed.__setitem__(0, executed[0] + inp[0].numel()))
    task = resolve_tasks([task_name])[0]
    opts = RunOptions(mode=mode, limit=a.items, progress=False)
    with PeakRSS() as mem:
        t = time.perf_counter()
        outcome = run_task(task, backend, NoCache(), "bench", opts)
        seconds = time.perf_counter() - t
    out = {"seconds": seconds, "items": len(outcome.records), "fast": backend.fast,
           "per_item": [r["resps"] for r in outcome.records]}
    if mode == "loglikelihood":  # tokens through the model, for the utilisation figure
        out["executed_tokens"] = executed[0]
        out["tokens"] = sum(min(len(backend.encode_pair(r["arguments"]["context"], "A")[0]), backend.max_length)
                            for r in outcome.records)
        from bench_checkpoint import non_embedding_params

        out["non_embedding_params"] = non_embedding_params(backend.model)
    return out | _memory(mem)


def run_lm_eval(a, task_name: str, mode: str) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    name = f"aimed_{task_name}"
    lm = HFLM(pretrained=a.ckpt, device=a.device, dtype="float32", add_bos_token=False,
              batch_size=a.lm_eval_batch_size)
    tm = TaskManager(include_path=str(Path(a.export) / mode), include_defaults=False)
    with PeakRSS() as mem:
        t = time.perf_counter()
        res = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=tm, log_samples=True,
                                      random_seed=0, numpy_random_seed=0, torch_random_seed=0,
                                      fewshot_random_seed=0)
        seconds = time.perf_counter() - t
    samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
    if mode == "generate":
        per_item = [s["filtered_resps"][0] if isinstance(s["filtered_resps"], list) else s["filtered_resps"]
                    for s in samples]
    else:
        per_item = [[[float(r[0]), 0, bool(r[1])] for r in s["filtered_resps"]] for s in samples]
    return {"seconds": seconds, "items": len(samples), "per_item": per_item} | _memory(mem)


def run_evaluate(a, task_name: str, mode: str) -> dict:
    """The product path, ``aimed-eval run``'s evaluate(), with a response cache."""
    from aimed.harness.evaluate import evaluate
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.runner import RunOptions

    with PeakRSS() as mem:
        t = time.perf_counter()
        result = evaluate(ModelArgs(model=a.ckpt, device=a.device, dtype="float32"), [task_name],
                          RunOptions(mode=mode, limit=a.items, progress=False),
                          output_dir=Path(a.run_dir), cache_dir=Path(a.cache_dir), batch_size=str(a.batch_size),
                          overwrite=True)
        seconds = time.perf_counter() - t
    timings = result.results["aimed"]["timings"]
    return {"seconds": seconds, "items": a.items, "timings": timings} | _memory(mem)


def _memory(mem: PeakRSS) -> dict:
    return {"rss_start_mb": mem.start / 2**20, "rss_peak_delta_mb": (mem.peak - mem.start) / 2**20,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=["aimed", "lm_eval", "cold", "warm"])
    p.add_argument("workload", choices=sorted(TASKS))
    p.add_argument("--ckpt", required=True)
    p.add_argument("--export", default="")
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch_size", default="auto")
    p.add_argument("--lm_eval_batch_size", type=int, default=16)
    p.add_argument("--plain", action="store_true", help="our plain paths (fast=False)")
    p.add_argument("--run_dir", default="")
    p.add_argument("--cache_dir", default="")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    task_name, mode = TASKS[a.workload]
    run = {"aimed": run_aimed, "lm_eval": run_lm_eval, "cold": run_evaluate, "warm": run_evaluate}[a.engine]
    result = run(a, task_name, mode) | {"threads": torch.get_num_threads()}
    Path(a.out).write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
