"""Choosing the contamination scanner's defaults (n, threshold) from measurements.

    python benchmarks/contamination_calibrate.py [--per_kind 500] [--seed 0] [--unit char|word]
        [--ngrams 8,10,13,16] [--thresholds 0.3,0.5,0.7,0.8]

CMExam validation items (the ``cmexam`` task, $AIMED_DATA/cmexam/val.csv) are planted into
copies of the shared training files ($AIMED_DATA/train/*/*), ``--per_kind`` items of each
kind (verbatim, punctuation and spacing changed, options reordered, one character in
twenty replaced; harness/contamination/plant.py), disjoint and drawn at random. Each
(n, threshold) row says:

- recall per kind: planted items flagged / planted items of that kind;
- fp clean: CMExam items flagged when the untouched training files are scanned (of 6,810);
- unscannable: items with no n-gram at this n in either view (never flagged).

One scan per n and corpus (the fast scanner); thresholds are applied to the shares.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from aimed.harness.contamination import items_from_tasks, scan_items
from aimed.harness.contamination.plant import KINDS, plant


def training_files(data: Path) -> list[Path]:
    return sorted(p for p in (data / "train").glob("*/*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per_kind", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unit", choices=("char", "word"), default="char")
    ap.add_argument("--ngrams", default=None, help="n values, comma-separated (default: 8,10,13,16 chars; 5,6,8,10 words)")
    ap.add_argument("--thresholds", default="0.3,0.5,0.7,0.8")
    ns = ap.parse_args()
    ngrams = [int(x) for x in (ns.ngrams or ("8,10,13,16" if ns.unit == "char" else "5,6,8,10")).split(",")]
    thresholds = [float(x) for x in ns.thresholds.split(",")]
    data = Path(os.environ.get("AIMED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    files = training_files(data)
    items = items_from_tasks(["cmexam"])
    rng = random.Random(ns.seed)
    chosen = rng.sample(range(len(items)), ns.per_kind * len(KINDS))
    kind_of = {idx: KINDS[i // ns.per_kind] for i, idx in enumerate(chosen)}
    print(f"{len(items)} CMExam items; {ns.per_kind} planted per kind into {len(files)} training files "
          f"({sum(f.stat().st_size for f in files) / 1e6:.1f} MB); unit={ns.unit}")
    with tempfile.TemporaryDirectory() as tmp:
        planted = plant(files, [(items[i], kind_of[i]) for i in chosen], Path(tmp), seed=ns.seed)
        head = ["n", "threshold", *(f"recall {k}" for k in KINDS), "fp clean", "unscannable"]
        rows = []
        for n in ngrams:
            t = time.perf_counter()
            dirty = scan_items(items, planted, n=n, unit=ns.unit, threshold=1.0)
            clean = scan_items(items, files, n=n, unit=ns.unit, threshold=1.0)
            print(f"  n={n}: scanned in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            unscannable = sum(o.ngrams == 0 for o in clean.items)
            for th in thresholds:
                recall = []
                for kind in KINDS:
                    idx = [i for i in chosen if kind_of[i] == kind]
                    hit = sum(dirty.items[i].ngrams > 0 and dirty.items[i].share >= th for i in idx)
                    recall.append(f"{hit / len(idx):.3f}")
                fp = sum(o.ngrams > 0 and o.share >= th for o in clean.items)
                rows.append([str(n), f"{th:.2f}", *recall, str(fp), str(unscannable)])
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
