"""``aimed-eval tasks`` lists tasks and groups; ``aimed-eval validate`` checks one."""

from __future__ import annotations

import argparse
import os

from ..errors import UserError
from ..scoring.protocol import PROTOCOLS
from ..taskregistry import DATA_ENV, Task, builtin_specs, data_root, load_spec, resolve_tasks, skip_bad_rows
from ..taskspec import GroupSpec, TaskSpec

SKIP_HELP = "skip the data rows a loader cannot read (listed in one warning, recorded in results.json)"


class SkipBadRows(argparse.Action):
    """``--skip_bad_rows``: takes effect as the flag is parsed, so that every command that
    loads tasks (validate, and run, which resolves its tasks inside evaluate()) honours it
    without passing it down."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)
        skip_bad_rows(True)


def add_parser(sub) -> None:
    p = sub.add_parser("tasks", help="list tasks and groups, with item counts and data locations")
    p.add_argument("--no_counts", action="store_true", help="do not read the data files")
    p.set_defaults(func=list_tasks)
    v = sub.add_parser("validate", help="check a task or spec file and its data")
    v.add_argument("task", help="a task or group name, or the path of a .yaml spec")
    v.add_argument("--skip_bad_rows", action=SkipBadRows, help=SKIP_HELP)
    v.set_defaults(func=validate)


def _status(task: Task, count: bool) -> tuple[str, str]:
    path = task.data_path
    if not path.exists():
        return "missing", str(path)
    if not count:
        return "found", str(path)
    try:
        return str(len(task.samples())), str(path)
    except UserError as exc:
        return "invalid", exc.message


def list_tasks(ns: argparse.Namespace) -> int:
    rows, groups = [], []
    for name, path in builtin_specs().items():
        spec, _ = load_spec(name)
        if isinstance(spec, GroupSpec):
            groups.append((name, ", ".join(spec.tasks)))
            continue
        items, where = _status(Task(spec, path), not ns.no_counts)
        rows.append((name, spec.kind.replace("multiple_choice", "mcq"), spec.mode, items, where))
    head = ("task", "kind", "mode", "items", "data")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(head[:4], widths)) + "  " + head[4])
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print("\ngroups:")
    for name, members in groups:
        print(f"  {name}: {members}")
    missing = [r[0] for r in rows if r[3] == "missing"]
    if missing:
        print("\n" + missing_note(missing))
    return 0


def missing_note(missing: list[str]) -> str:
    """Which tasks have no data, where it was looked for, and how to point there."""
    where = f"{data_root()}, from {DATA_ENV}" if os.environ.get(DATA_ENV) else \
        f"{data_root()}, the default: {DATA_ENV} is not set"
    return (f"missing data for {len(missing)} task(s): {', '.join(missing)}\n"
            f"looked under {where}\n"
            f"set {DATA_ENV} to the folder that holds the publishers' files in their own layout (each task's "
            "row above names the file it reads), or see `aimed-eval validate TASK`")


def validate(ns: argparse.Namespace) -> int:
    spec, path = load_spec(ns.task)
    tasks = resolve_tasks([ns.task])
    for task in tasks:
        items = task.samples()
        multi = sum(s.is_multi_answer for s in items)
        extra = f", {multi} multi-answer" if task.spec.kind == "multiple_choice" else ""
        if task.skipped_rows:
            extra += f", {len(task.skipped_rows)} bad row(s) skipped"
        if task.spec.protocol:
            extra += f"; protocol {task.spec.protocol} ({PROTOCOLS.get(task.spec.protocol).source})"
        print(f"ok  {task.name}: {len(items)} items{extra} from {task.data_path}")
    if isinstance(spec, GroupSpec):
        print(f"ok  group {spec.group}: {len(tasks)} tasks ({path})")
    elif isinstance(spec, TaskSpec):
        print(f"ok  spec {path}")
    return 0
