"""``aimed-eval report``: the results index as one self-contained HTML file (or Markdown).

Sections: the leaderboard (best of each stage marked), per-task bars with 95% intervals,
stage-progression lines per base model, per-category heatmaps, and a comparison of two
runs (``--compare RUN_A RUN_B``; by default the best checkpoint against its parent).
The HTML carries plotly.js inline and fetches nothing, so it opens offline.

Registered through the ``aimed.commands`` entry point (pyproject.toml).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

from aimed.harness import flag_types
from aimed.harness.index_pg import is_pg_url
from aimed.harness.errors import UserError
from aimed.harness.help_text import user_help
from aimed.harness.index_lookup import LOOKUP_HELP, find_index

FORMATS = ("html", "markdown")
INSTALL = "pip install 'aimed-eval[report]'"


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the leaderboard, charts and a comparison as one HTML/Markdown file",
                       description=user_help(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="file to write (default: report.html, or report.md with --format markdown)")
    p.add_argument("--db", type=flag_types.db_path, default=None, help=LOOKUP_HELP)
    p.add_argument("--base_model", default=None, help="only these base models, comma-separated")
    p.add_argument("--stage", default=None, help="only these stages (pt, sft, rm, ppo, dpo, ...), comma-separated")
    p.add_argument("--tasks", default=None, help="only these tasks or groups, comma-separated")
    p.add_argument("--compare", nargs=2, metavar=("RUN_A", "RUN_B"), default=None,
                   help="compare these two runs (folders or run ids); default: best checkpoint vs its parent")
    p.add_argument("--format", choices=FORMATS, default="html", help="html (default) or markdown")
    p.add_argument("--pipeline", type=Path, default=None,
                   help="a pipeline's pipeline_state.json: its gate decisions get a section (default: the one "
                        "beside the index, if there is one)")
    p.set_defaults(func=run)


def check_writable(out: Path) -> None:
    """Refuse before any work is done, rather than after."""
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give a file name such as {out / 'report.html'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {out}: folder {parent} does not exist; create it or write elsewhere")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"--out {out}: not writable; choose a file in a folder you can write to")
    if out.exists() and not is_our_report(out):
        raise UserError(f"--out {out}: already exists and is not a report aimed-eval wrote; choose another "
                        "file name (it was left as it is)")


def is_our_report(path: Path) -> bool:
    """A file an earlier ``aimed-eval report`` wrote, which a new report may replace."""
    try:
        with path.open("rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return False
    return head.startswith("# AiMed-Eval report\n") or (
        head.startswith("<!DOCTYPE html>") and "<title>AiMed-Eval report</title>" in head)


def write_atomically(out: Path, text: str) -> None:
    """Temporary sibling file, then rename: a reader never sees half a report."""
    parent = out.parent if str(out.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror}); choose another file") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"--out {out}: cannot write there ({exc.strerror}); choose another file") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(ns: argparse.Namespace) -> int:
    from . import collect

    out = ns.out or Path("report.md" if ns.format == "markdown" else "report.html")
    if ns.format == "html" and importlib.util.find_spec("plotly") is None:
        raise UserError(f"the HTML report needs plotly, which is not installed: {INSTALL} "
                        "(or --format markdown, which needs nothing more)")
    check_writable(out)
    db_path = find_index(ns.db)
    if not is_pg_url(db_path) and not Path(db_path).is_file():
        raise UserError(f"--db {db_path}: no results index there; record runs with `aimed-eval run` "
                        "or `aimed-eval import`, or point --db / AIMED_DB at an index")
    filters = collect.Filters(collect.split_list(ns.base_model), collect.split_list(ns.stage),
                              collect.split_list(ns.tasks))
    from .pipeline import discover, load_state

    state_file = ns.pipeline or (None if is_pg_url(db_path) else discover(Path(db_path)))
    state = load_state(state_file) if state_file else None
    content = collect.collect(db_path if is_pg_url(db_path) else Path(db_path), filters, tuple(ns.compare) if ns.compare else None)
    content.pipeline = state
    if ns.format == "markdown":
        from .markdown import render
    else:
        from .html import render
    text = render(content)
    write_atomically(out, text)
    print(f"report: {out} ({len(text.encode('utf-8')) / 1e6:.1f} MB, {len(content.board.rows)} checkpoints, "
          f"{len(content.board.tasks)} tasks)")
    if content.comparison_note:
        print(content.comparison_note)
    return 0
