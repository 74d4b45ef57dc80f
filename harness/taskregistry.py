"""Find tasks and groups by name or spec path, resolve their data, and load their items.

Bad rows: a loader yields a ``BadRow`` for each row it cannot read, and the checks every
task gets (unique ids, answers among the options, ...) add theirs; then either one
UserError lists them all (up to ``MAX_LISTED``, then a count), or, with ``on_bad_row: skip``
in the spec or ``--skip_bad_rows`` (``skip_bad_rows()``), they are skipped with one warning
that lists each by line and recorded on the task (``Task.skipped_rows``, which a run writes
to ``results.json`` as ``aimed.skipped_rows``).

A ``predict_only`` task (taskspec.py) may hold items without an answer; a loader gives such
an item as an :class:`UnansweredItem`, which still says whether it takes one answer or
several, so the model's choice is made the right way. Elsewhere an item without an answer is
a bad row, and a file where no item has one is refused naming ``predict_only``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Union

from . import plugins
from .errors import UserError, did_you_mean
from .registry import Registry
from .samples import BadRow, Sample
from .scoring.metrics import METRICS
from .scoring.protocol import PROTOCOLS
from .taskspec import GroupSpec, Spec, TaskSpec, parse_spec

DATA_ENV = "AIMED_DATA"
DATA_PREFIX = "$AIMED_DATA/"
MAX_LISTED = 20  # bad rows named in one message; the rest are counted
log = logging.getLogger(__name__)
_SKIP_BAD_ROWS = False  # set by --skip_bad_rows for the whole invocation
# warnings given in this process, by (what, path, size, mtime): a pipeline
# scores each checkpoint on the same file, and one warning says it all
_WARNED: set[tuple] = set()


# A publisher's submission format: a predict_only task's sample records (as a run writes
# them, each with ``doc`` and ``filtered_resps``) -> the text of the file its leaderboard
# takes. Registered by the plugin that knows the publisher (``submission: cmb`` in a spec).
# Here, beside the loaders' registry's users, because plugins.py keeps only the loaders'.
SubmissionWriter = Callable[[list[dict]], str]
SUBMISSIONS: Registry[SubmissionWriter] = Registry("submission format")


@dataclass
class UnansweredItem(Sample):
    """A multiple-choice item of a predict_only task whose answer its publisher keeps (CMB's
    test split). ``answer`` is empty; ``multi_answer`` is what the item's type says (CMB's
    ``question_type`` 多项选择题), since the choice rule differs for items with several
    answers (scoring/choose.py, scoring/extract.py) and an unknown answer cannot say it."""

    multi_answer: bool = False

    @property
    def is_multi_answer(self) -> bool:
        return self.multi_answer

    def to_dict(self) -> dict:
        return {**super().to_dict(), "multi_answer": self.multi_answer}

    @classmethod
    def from_doc(cls, doc: dict) -> "UnansweredItem":
        """A samples file's ``doc`` of such an item, back as one (scoring.score.sample_from_doc
        knows only the fields of a plain Sample)."""
        return cls(id=doc["id"], question=doc["question"], options=doc.get("options", {}),
                   categories=doc.get("categories", {}), multi_answer=bool(doc.get("multi_answer")))


def skip_bad_rows(on: bool = True) -> None:
    """``--skip_bad_rows``: skip every task's bad rows, whatever its spec says."""
    global _SKIP_BAD_ROWS
    _SKIP_BAD_ROWS = on


def bad_rows_message(path: Path, bad: list[BadRow]) -> str:
    """One line naming every bad row (up to MAX_LISTED) and the ways out."""
    hint = "or skip them: `on_bad_row: skip` in the spec, or --skip_bad_rows"
    if len(bad) == 1:
        return f"{path}:{bad[0].line}: {_one_line(bad[0].message)} ({hint.replace('them', 'it')})"
    listed = "; ".join(f"line {b.line}: {_one_line(b.message)}" for b in bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    return f"{path}: {len(bad)} bad rows: {listed}{more}; fix them, {hint}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def collect_rows(rows: Iterable[Union[Sample, BadRow]], path: Path, skip: bool) -> tuple[list[Sample], list[BadRow]]:
    """Split a loader's output into items and bad rows; unless ``skip``, bad rows are an error."""
    items: list[Sample] = []
    bad: list[BadRow] = []
    for row in rows:
        (bad if isinstance(row, BadRow) else items).append(row)
    if bad and not skip:
        raise UserError(bad_rows_message(path, bad))
    return items, bad


def reset_warnings() -> None:
    """Each command warns afresh (in-process callers run several)."""
    _WARNED.clear()


def first_warning(path: Path, what: str = "bad rows") -> bool:
    """True the first time this process warns ``what`` about this file as it is now
    (loaders use it for their own warnings too)."""
    st = path.stat()
    key = (what, str(path.resolve()), st.st_size, st.st_mtime_ns)
    first = key not in _WARNED
    _WARNED.add(key)
    return first


def data_root() -> Path:
    return Path(os.environ.get(DATA_ENV, "~/aimed_data")).expanduser()


def resolve_data_path(raw: str, spec_path: Path) -> Path:
    if raw.startswith(DATA_PREFIX):
        return data_root() / raw[len(DATA_PREFIX):]
    p = Path(raw).expanduser()
    return p if p.is_absolute() else Path(os.path.normpath(spec_path.parent / p))  # no 'specs/../' in messages


@dataclass
class Task:
    spec: TaskSpec
    spec_path: Path
    _cache: dict = field(default_factory=dict, repr=False)
    skipped_rows: list[dict] = field(default_factory=list)  # {"file", "line", "reason"} of each skipped row

    @property
    def name(self) -> str:
        return self.spec.task

    @property
    def data_path(self) -> Path:
        return resolve_data_path(self.spec.data.path, self.spec_path)

    @property
    def fewshot_path(self) -> Path | None:
        fp = self.spec.data.fewshot_path
        return resolve_data_path(fp, self.spec_path) if fp else None

    def _read(self, path: Path, answers_required: bool = True) -> list[Sample]:
        """The file's items, checked. ``answers_required=False``: a predict_only task's own
        file, whose items may lack an answer (its few-shot file still needs them)."""
        if not path.exists():
            hint = ""
            if self.spec.data.path.startswith(DATA_PREFIX):
                hint = (f" (set {DATA_ENV} to the folder that holds "
                        f"{self.spec.data.path[len(DATA_PREFIX):]}, in its publisher's layout)")
            raise UserError(f"task {self.name!r}: data file {path} not found; put the "
                            f"{self.spec.data.loader} data there{hint}")
        if path.is_dir():
            raise UserError(f"task {self.name!r}: data file {path} is a folder; point data.path at the "
                            f"{self.spec.data.loader} file itself")
        loader = plugins.LOADERS.get(self.spec.data.loader)
        skip = _SKIP_BAD_ROWS or self.spec.on_bad_row == "skip"
        items, bad = collect_rows(loader(path, self.spec.data), path, skip=True)
        if answers_required and self.spec.kind == "multiple_choice" and items and not any(s.answer for s in items):
            raise UserError(f"{path}: no item has an answer, as in a test split whose answers the publisher keeps; "
                            f"set predict_only: true in the spec of task {self.name!r} to predict them without "
                            "scoring (as cmb_test does), or point it at an answered file")
        problems = _check_items(items, path, self.spec, answers_required)
        bad = sorted(bad + [b for _, b in problems], key=lambda b: b.line)
        if bad and not skip:
            raise UserError(bad_rows_message(path, bad))
        if problems:
            dropped = {i for i, _ in problems}
            items = [s for i, s in enumerate(items) if i not in dropped]
        if bad and first_warning(path):
            log.warning("%s: skipped %d bad row(s): %s", path, len(bad),
                        "; ".join(f"line {b.line}: {_one_line(b.message)}" for b in bad))
            self.skipped_rows.extend({"file": str(path), "line": b.line, "reason": _one_line(b.message)}
                                     for b in bad)
        if not items:
            raise UserError(f"{path}: no items found; check that the file has rows and the spec's loader fits it")
        return items

    def samples(self) -> list[Sample]:
        if "samples" not in self._cache:
            self._cache["samples"] = self._read(self.data_path, answers_required=not self.spec.predict_only)
        return self._cache["samples"]

    def fewshot_pool(self) -> list[Sample]:
        """The examples shots are drawn from: answered items only (a shot shows its answer)."""
        if self.fewshot_path:
            return self._read(self.fewshot_path)
        return [s for s in self.samples() if s.gold] if self.spec.predict_only else self.samples()

    @cached_property
    def data_hash(self) -> str:
        h = hashlib.sha256()
        for p in (self.data_path, self.fewshot_path):
            if p is not None and p.exists():
                h.update(p.read_bytes())
        return h.hexdigest()[:16]

    @cached_property
    def spec_hash(self) -> str:
        # a spec without `circular:` (or `predict_only:`, `submission:`) hashes as it did before
        # the key existed; `judge:` says how a judge reads the outputs, not what the model is
        # asked (the rubric's hash is recorded apart)
        exclude = {"judge"} | {key for key in ("circular", "predict_only", "submission")
                               if not getattr(self.spec, key)}
        return hashlib.sha256(self.spec.model_dump_json(exclude=exclude).encode()).hexdigest()[:16]


def _check_items(items: list[Sample], path: Path, spec: TaskSpec,
                 answers_required: bool = True) -> list[tuple[int, BadRow]]:
    """Checks every loader gets for free: ids unique, choices well-formed. (index, problem) of each bad item."""
    problems: list[tuple[int, BadRow]] = []
    seen: dict[str, str] = {}
    for i, s in enumerate(items):
        problem = _item_problem(s, seen, spec, answers_required)
        if problem:
            problems.append((i, BadRow(_line_of(s), problem)))
        else:
            seen[s.id] = s.where or "?"
    return problems


def _item_problem(s: Sample, seen: dict[str, str], spec: TaskSpec, answers_required: bool = True) -> str:
    if s.id in seen:
        return f"duplicate id {s.id!r} (first at {seen[s.id]}); ids must be unique"
    if spec.kind == "multiple_choice":
        if len(s.options) < 2:
            return (f"item {s.id!r} has {len(s.options)} options; "
                    "a multiple-choice item needs at least two non-empty options")
        if not s.answer and not answers_required:
            return ""  # a predict_only task's item: its publisher keeps the answer
        if not s.answer:
            return f"item {s.id!r} has no answer letter; fill in the answer"
        missing = [a for a in s.answer if a not in s.options]
        if missing:
            return (f"answer {''.join(missing)!r} of item {s.id!r} is not among its options "
                    f"{''.join(s.options)}; fix the answer or the options")
    elif not s.target.strip() and answers_required:
        return f"item {s.id!r} has an empty reference text"
    return ""


def _line_of(s: Sample) -> int:
    m = re.search(r":(\d+)$", s.where)
    return int(m.group(1)) if m else 0


def check_task_names(spec: TaskSpec, path: Path) -> None:
    """The metrics and the protocol a spec names exist and fit its kind (what `run` would hit
    only after loading the model)."""
    for name in spec.metrics:
        metric = METRICS.get(name) if name in METRICS else None
        if metric is None:
            known = [m for m in METRICS.names() if METRICS.get(m).protocol is None and METRICS.get(m).kinds]
            raise UserError(f"{path}: unknown metric {name!r}{did_you_mean(name, known)}; "
                            f"known: {', '.join(known)}")
        if metric.protocol:
            raise UserError(f"{path}: metric {name!r} is reported by the {metric.protocol!r} protocol; "
                            f"remove it from metrics and set `protocol: {metric.protocol}`")
        if not metric.kinds:  # acc_circular, acc_clean, ...: computed from a run's options
            raise UserError(f"{path}: metric {name!r} is reported by run options (--circular, "
                            "--contamination_data), not named in a spec; remove it from metrics")
        if spec.kind not in metric.kinds:
            fits = [m for m in METRICS.names() if spec.kind in METRICS.get(m).kinds and not METRICS.get(m).protocol]
            raise UserError(f"{path}: metric {name!r} does not fit a {spec.kind} task; "
                            f"use one of {', '.join(fits)}")
    if spec.submission and spec.submission not in SUBMISSIONS:
        raise UserError(f"{path}: unknown submission format {spec.submission!r}"
                        f"{did_you_mean(spec.submission, SUBMISSIONS.names())}; "
                        f"known: {', '.join(SUBMISSIONS.names()) or '(none registered)'}")
    if spec.protocol:
        if spec.protocol not in PROTOCOLS:
            raise UserError(f"{path}: unknown protocol {spec.protocol!r}"
                            f"{did_you_mean(spec.protocol, PROTOCOLS.names())}; known: {', '.join(PROTOCOLS.names())}")
        if spec.kind not in PROTOCOLS.get(spec.protocol).kinds:
            raise UserError(f"{path}: protocol {spec.protocol!r} scores "
                            f"{' or '.join(PROTOCOLS.get(spec.protocol).kinds)} tasks, not {spec.kind}")


@dataclass
class Group:
    spec: GroupSpec
    spec_path: Path

    @property
    def name(self) -> str:
        return self.spec.group


def builtin_specs() -> dict[str, Path]:
    plugins.load_plugins()
    found: dict[str, Path] = {}
    for folder in plugins.SPEC_DIRS:
        for p in sorted(folder.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def load_spec(name_or_path: str) -> tuple[Spec, Path]:
    plugins.load_plugins()
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path).expanduser().resolve()
        spec = parse_spec(path)
        if isinstance(spec, TaskSpec):
            check_task_names(spec, path)
        return spec, path
    known = builtin_specs()
    if name_or_path not in known:
        raise UserError(f"unknown task {name_or_path!r}{did_you_mean(name_or_path, list(known))}; "
                        "`aimed-eval tasks` lists them, or pass the path of a .yaml spec")
    path = known[name_or_path]
    spec = parse_spec(path)
    declared = spec.task if isinstance(spec, TaskSpec) else spec.group
    if declared != name_or_path:
        raise UserError(f"{path}: the file name and its name {declared!r} differ; rename one")
    if isinstance(spec, TaskSpec):
        check_task_names(spec, path)
    return spec, path


def resolve_tasks(names: str | list[str]) -> list[Task]:
    """Expand a comma-separated list of tasks, groups and spec paths into tasks, in order."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UserError("no tasks given; pass --tasks NAME[,NAME...] (see `aimed-eval tasks`)")
    out: dict[str, Task] = {}
    for name in names:
        for task in _walk(name, (), {})[1]:
            out.setdefault(task.name, task)
    return list(out.values())


def group_members(name: str) -> list[str] | None:
    """The task names a group expands to, or None when ``name`` is a task."""
    spec, _ = load_spec(name)
    if isinstance(spec, TaskSpec):
        return None
    return [t.name for t in resolve_tasks([name])]


def group_tree(names: list[str]) -> dict[str, list[str]]:
    """Every group among ``names`` (and inside them) -> its direct members, members first."""
    tree: dict[str, list[str]] = {}
    for n in names:
        _walk(n, (), tree)
    return tree


def _walk(name: str, stack: tuple[str, ...], tree: dict[str, list[str]]) -> tuple[str, list[Task]]:
    """The one walk over groups: (the task's or group's name, the tasks it stands for), with
    each group's direct members recorded in ``tree`` (members before their group). A group
    that includes itself, or counts a task twice, is an error."""
    if name in stack:
        raise UserError(f"group {stack[-1]!r} includes itself through {' -> '.join(stack + (name,))}")
    spec, path = load_spec(name)
    if isinstance(spec, TaskSpec):
        return spec.task, [Task(spec, path)]
    if spec.group in stack:  # named by its file's path this time
        raise UserError(f"group {spec.group!r} includes itself through {' -> '.join(stack + (spec.group,))}")
    tasks: list[Task] = []
    members: list[str] = []
    for member in spec.tasks:
        if member.endswith((".yaml", ".yml")) and not os.path.isabs(member):
            member = str(path.parent / member)  # a member file beside the group's
        member_name, member_tasks = _walk(member, stack + (spec.group,), tree)
        members.append(member_name)
        tasks.extend(member_tasks)
    seen: set[str] = set()
    for task in tasks:  # a member counted twice would weigh twice in the group's score
        if task.name in seen:
            raise UserError(f"{path}: group {spec.group!r} includes task {task.name!r} twice (listed twice, "
                            "or also through a member group); list each task once")
        seen.add(task.name)
    tree.setdefault(spec.group, members)
    return spec.group, tasks
