"""Contamination scanner speed: the vectorised scanner against the plain-Python reference.

    OMP_NUM_THREADS=1 python benchmarks/contamination_bench.py [--size_mb 1100] [--shard_mb 100]
        [--work_dir /tmp] [--keep] [--seed 0]

Builds a corpus of ``--size_mb`` (default 1.1 GB) in a temporary folder under
``--work_dir`` (removed at the end unless ``--keep``) from the shared training files
($AIMED_DATA/train/*/*), in shards of ``--shard_mb``, each shard one file of each source's
format (pretraining text, ShareGPT JSONL, instruction JSON lines, preference JSON lines
and JSONL), in the sources' proportions of bytes. Records are drawn at random, one
character in a hundred of each string replaced by another, and 0.1 % of records carry a
planted ``medqa`` item (harness/contamination/plant.py; the four kinds in turn).

Then, each in its own process (one core, ``OMP_NUM_THREADS=1``), against every item of the
``medqa`` suite (``resolve_tasks(["medqa"])``): the fast scanner over the whole corpus and
over the first shard; the reference over the first shard only (at ~5 MB/s a whole GB would
take an hour: its MB/s on the shard is taken as its speed on the corpus, the shards being
alike). Printed: MB/s and peak resident memory (``ru_maxrss``) of each, the ratio of the
fast scanner's MB/s on the whole corpus to the reference's, and whether both give the same
share and flag for every item on the first shard. ``--by_format`` adds the same for the
pretraining text files and the JSON files apart (each scan's fixed start-up, about half a
second for the suite's n-gram table, is in its time).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUB_EVERY = 100


def _data() -> Path:
    return Path(os.environ.get("AIMED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _perturb(text: str, rng: random.Random, pool: str) -> str:
    if len(text) < SUB_EVERY:
        return text
    chars = list(text)
    for i in rng.sample(range(len(chars)), len(chars) // SUB_EVERY):
        chars[i] = rng.choice(pool)
    return "".join(chars)


def _perturb_record(value, rng: random.Random, pool: str):
    if isinstance(value, str):
        return _perturb(value, rng, pool)
    if isinstance(value, dict):
        return {k: _perturb_record(v, rng, pool) for k, v in value.items()}
    if isinstance(value, list):
        return [_perturb_record(v, rng, pool) for v in value]
    return value


def build_corpus(out: Path, size_mb: int, shard_mb: int, seed: int) -> list[list[Path]]:
    """Shards of files, one a source format each; returns the files of each shard."""
    from aimed.harness.contamination import items_from_tasks
    from aimed.harness.contamination.plant import KINDS, render, _with_text

    rng = random.Random(seed)
    sources = sorted(p for p in (_data() / "train").glob("*/*") if p.is_file())
    total = sum(p.stat().st_size for p in sources)
    records = {}
    for src in sources:
        lines = [l for l in src.read_text(encoding="utf-8-sig").splitlines() if l.strip()]
        records[src] = [json.loads(l) for l in lines] if src.suffix in (".json", ".jsonl") else lines
    pool = "".join(sorted({c for src in sources for c in src.read_text(encoding="utf-8-sig")[:200000]
                           if "\u4e00" <= c <= "\u9fff"}))
    items = items_from_tasks(["medqa"])
    shards, planted = [], 0
    for s in range(max(1, round(size_mb / shard_mb))):
        folder = out / f"shard{s:03d}"
        folder.mkdir(parents=True)
        files = []
        for src in sources:
            target = folder / src.name
            budget = shard_mb * 1e6 * src.stat().st_size / total
            written = 0
            with target.open("w", encoding="utf-8") as f:
                while written < budget:
                    rec = rng.choice(records[src])
                    if rng.random() < 0.001:  # a leak
                        text = render(rng.choice(items), KINDS[planted % len(KINDS)], rng)
                        planted += 1
                        rec = _with_text(rec, text) if isinstance(rec, dict) else text.replace("\n", " ")
                    else:
                        rec = _perturb_record(rec, rng, pool)
                    line = (json.dumps(rec, ensure_ascii=False) if isinstance(rec, dict) else rec) + "\n"
                    f.write(line)
                    written += len(line.encode("utf-8"))
            files.append(target)
        shards.append(files)
        print(f"  shard {s}: {sum(p.stat().st_size for p in files) / 1e6:.0f} MB", file=sys.stderr)
    print(f"  {planted} items planted", file=sys.stderr)
    return shards


def scan_child(engine: str, files: list[str], out: str) -> None:
    """In a fresh process: load the items, scan, write timings, shares and peak memory."""
    from aimed.harness.contamination import items_from_tasks, scan_items

    items = items_from_tasks(["medqa"])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    report = scan_items(items, files, engine=engine)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(out).write_text(json.dumps({
        "engine": engine, "seconds": seconds, "bytes": report.bytes_scanned, "items": len(items),
        "maxrss_mb": peak / 1024, "rss_before_scan_mb": base / 1024,
        "shares": [o.share for o in report.items], "flags": [o.flagged for o in report.items],
        "flagged": sum(o.flagged for o in report.items)}))


def run_child(engine: str, files: list[Path], work: Path, name: str) -> dict:
    out = work / f"{name}.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run([sys.executable, __file__, "--_child", engine, str(out), *map(str, files)], check=True, env=env)
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size_mb", type=int, default=1100)
    ap.add_argument("--shard_mb", type=int, default=100)
    ap.add_argument("--work_dir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip_reference", action="store_true")
    ap.add_argument("--by_format", action="store_true", help="also scan the text and the JSON files apart")
    ap.add_argument("--_child", nargs="+", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns._child:
        scan_child(ns._child[0], ns._child[2:], ns._child[1])
        return 0
    ns.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aimed-contamination-bench-", dir=ns.work_dir))
    try:
        t = time.perf_counter()
        shards = build_corpus(work / "corpus", ns.size_mb, ns.shard_mb, ns.seed)
        every = [p for shard in shards for p in shard]
        size = sum(p.stat().st_size for p in every) / 1e6
        print(f"corpus: {size:.0f} MB in {len(shards)} shards of {len(shards[0])} files, built in "
              f"{time.perf_counter() - t:.0f} s")
        fast = run_child("fast", every, work, "fast_all")
        fast1 = run_child("fast", shards[0], work, "fast_shard0")
        rows = [("fast, whole corpus", fast), ("fast, first shard", fast1)]
        ref = None
        if not ns.skip_reference:
            ref = run_child("reference", shards[0], work, "reference_shard0")
            rows.append(("reference, first shard", ref))
        if ns.by_format:  # the same, for the text files and the JSON files apart
            for kind, pick in (("text", lambda p: p.suffix == ".txt"), ("JSON", lambda p: p.suffix != ".txt")):
                rows.append((f"fast, {kind} files", run_child("fast", [p for p in every if pick(p)], work, f"fast_{kind}")))
                if ref is not None:
                    rows.append((f"reference, {kind}, 1st shard",
                                 run_child("reference", [p for p in shards[0] if pick(p)], work, f"ref_{kind}")))
        print(f"items: {fast['items']} (medqa suite); one core, OMP_NUM_THREADS=1")
        print(f"{'scan':<26} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'RSS before scan':>16} {'flagged':>8}")
        for name, r in rows:
            print(f"{name:<26} {r['bytes'] / 1e6:7.0f} {r['seconds']:8.1f} {r['bytes'] / 1e6 / r['seconds']:7.1f} "
                  f"{r['maxrss_mb']:12.0f} {r['rss_before_scan_mb']:16.0f} {r['flagged']:8d}")
        if ref is not None:
            speed = fast["bytes"] / fast["seconds"] / (ref["bytes"] / ref["seconds"])
            same = fast1["flags"] == ref["flags"] and fast1["shares"] == ref["shares"]
            diff = sum(a != b for a, b in zip(fast1["flags"], ref["flags"]))
            print(f"speed-up (fast on the whole corpus / reference on the first shard): {speed:.1f}x")
            print(f"same shares and flags on every item of the first shard: {same} ({diff} flags differ)")
    finally:
        if ns.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
