"""``aimed-eval contamination``: which benchmark items appear in training files.

Each item's question, options and answer are normalised (NFKC, punctuation and spaces
dropped) and cut into character n-grams (or jieba-word n-grams with --unit word); an
item is flagged when the share of its n-grams found in the files reaches --threshold.
Files: .txt/.text/.md (a segment a line), .json/.jsonl (every string of every record:
instruction/input/output, ShareGPT conversations, preference pairs, ...), .csv/.tsv
(every cell), and any of these as .gz. Method and defaults: docs/contamination.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..contamination.normalise import UNITS
from ..contamination.scan import DEFAULT_N, DEFAULT_THRESHOLD, MIN_N
from .. import flag_types
from ..help_text import user_help

TOP = 10


def add_parser(sub) -> None:
    p = sub.add_parser("contamination", help="find benchmark items in training data (n-gram overlap)",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="medqa", help="tasks, groups or spec files, comma-separated (default: medqa)")
    p.add_argument("--data", nargs="+", required=True, type=Path, metavar="FILE",
                   help="training files (.txt .md .json .jsonl .csv .tsv, or .gz of them)")
    p.add_argument("--ngram", type=int, default=None, metavar="N",
                   help=f"n-gram length, at least {MIN_N} (default: {DEFAULT_N['char']} characters, "
                        f"{DEFAULT_N['word']} words)")
    p.add_argument("--unit", choices=UNITS, default="char", help="characters (default) or jieba words")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="T",
                   help=f"flag an item when this share of its n-grams is found, 0..1 (default {DEFAULT_THRESHOLD})")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.jsonl",
                   help="write every item's overlap here (a header line, then one item a line)")
    p.add_argument("--top", type=flag_types.non_negative_int, default=TOP, metavar="K", help=f"flagged items to list (default {TOP})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    from ..contamination.corpus import check_files
    from ..contamination.items import items_from_tasks
    from ..contamination.report import check_out
    from ..contamination.scan import check_settings, scan_items

    # every mistake is said before any reading or writing
    check_settings(ns.ngram, ns.unit, ns.threshold)
    if ns.out is not None:
        check_out(ns.out)
    files = check_files(ns.data)
    items = items_from_tasks(ns.tasks)
    bar = None if ns.quiet else _bar(sum(tf.size for tf in files))
    try:
        report = scan_items(items, files, ns.ngram, ns.unit, ns.threshold, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    _print(report, ns.top)
    if ns.out is not None:
        report.write_jsonl(ns.out)
        print(f"wrote {ns.out} ({len(report.items)} items)")
    return 0


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="scanning", unit="B", unit_scale=True, dynamic_ncols=True, leave=False)


def _print(report, top: int) -> None:
    counts = report.counts()
    mb = report.bytes_scanned / 1e6
    print(f"{len(report.files)} file(s), {mb:.1f} MB in {report.seconds:.1f} s; {report.n}-"
          f"{'character' if report.unit == 'char' else 'word'} n-grams, flagged at share >= {report.threshold:g}")
    head = ("task", "items", "flagged", "share", "too short")
    rows = [(c.task, str(c.items), str(c.flagged), f"{c.share:.2%}", str(c.unscanned)) for c in counts.values()]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))))
    flagged = report.flagged()
    if flagged and top:
        print(f"most overlapping flagged items ({min(top, len(flagged))} of {len(flagged)}):")
        for o in flagged[:top]:
            print(f"  {o.task}/{o.id}  share {o.share:.2f}  longest {o.longest}  {o.where}  {o.preview}")
