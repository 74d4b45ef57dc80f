"""Find tasks and groups by name or spec path, resolve their data, and load their items."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import plugins
from .errors import UserError, did_you_mean
from .samples import Sample
from .taskspec import GroupSpec, Spec, TaskSpec, parse_spec

DATA_ENV = "AIMED_DATA"
DATA_PREFIX = "$AIMED_DATA/"


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

    def _read(self, path: Path) -> list[Sample]:
        if not path.exists():
            hint = ""
            if self.spec.data.path.startswith(DATA_PREFIX):
                hint = (f" (set {DATA_ENV} to the folder that holds "
                        f"{self.spec.data.path[len(DATA_PREFIX):]}, in its publisher's layout)")
            raise UserError(f"task {self.name!r}: data file {path} not found; put the "
                            f"{self.spec.data.loader} data there{hint}")
        loader = plugins.LOADERS.get(self.spec.data.loader)
        items = list(loader(path, self.spec.data))
        _check_items(items, path, self.spec)
        return items

    def samples(self) -> list[Sample]:
        if "samples" not in self._cache:
            self._cache["samples"] = self._read(self.data_path)
        return self._cache["samples"]

    def fewshot_pool(self) -> list[Sample]:
        return self._read(self.fewshot_path) if self.fewshot_path else self.samples()

    @cached_property
    def data_hash(self) -> str:
        h = hashlib.sha256()
        for p in (self.data_path, self.fewshot_path):
            if p is not None and p.exists():
                h.update(p.read_bytes())
        return h.hexdigest()[:16]

    @cached_property
    def spec_hash(self) -> str:
        return hashlib.sha256(self.spec.model_dump_json().encode()).hexdigest()[:16]


def _check_items(items: list[Sample], path: Path, spec: TaskSpec) -> None:
    """Checks every loader gets for free: ids unique, choices well-formed."""
    if not items:
        raise UserError(f"{path}: no items found; check that the file has rows and the spec's loader fits it")
    seen: dict[str, str] = {}
    for s in items:
        if s.id in seen:
            raise UserError(f"{s.where or path}: duplicate id {s.id!r} (first at {seen[s.id]}); ids must be unique")
        seen[s.id] = s.where or "?"
        if spec.kind == "multiple_choice":
            if len(s.options) < 2:
                raise UserError(f"{s.where or path}: item {s.id!r} has {len(s.options)} options; "
                                "a multiple-choice item needs at least two non-empty options")
            if not s.answer:
                raise UserError(f"{s.where or path}: item {s.id!r} has no answer letter; fill in the answer")
            missing = [a for a in s.answer if a not in s.options]
            if missing:
                raise UserError(f"{s.where or path}: answer {''.join(missing)!r} of item {s.id!r} is not "
                                f"among its options {''.join(s.options)}; fix the answer or the options")
        elif not s.target.strip():
            raise UserError(f"{s.where or path}: item {s.id!r} has an empty reference text")


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
        return parse_spec(path), path
    known = builtin_specs()
    if name_or_path not in known:
        raise UserError(f"unknown task {name_or_path!r}{did_you_mean(name_or_path, list(known))}; "
                        "`aimed-eval tasks` lists them, or pass the path of a .yaml spec")
    path = known[name_or_path]
    spec = parse_spec(path)
    declared = spec.task if isinstance(spec, TaskSpec) else spec.group
    if declared != name_or_path:
        raise UserError(f"{path}: the file name and its name {declared!r} differ; rename one")
    return spec, path


def resolve_tasks(names: str | list[str]) -> list[Task]:
    """Expand a comma-separated list of tasks, groups and spec paths into tasks, in order."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise UserError("no tasks given; pass --tasks NAME[,NAME...] (see `aimed-eval tasks`)")
    out: dict[str, Task] = {}
    for name in names:
        for task in _expand(name, stack=()):
            out.setdefault(task.name, task)
    return list(out.values())


def _expand(name: str, stack: tuple[str, ...]) -> list[Task]:
    if name in stack:
        raise UserError(f"group {stack[-1]!r} includes itself through {' -> '.join(stack + (name,))}")
    spec, path = load_spec(name)
    if isinstance(spec, TaskSpec):
        return [Task(spec, path)]
    tasks: list[Task] = []
    for member in spec.tasks:
        if member.endswith((".yaml", ".yml")) and not os.path.isabs(member):
            member = str(path.parent / member)
        tasks.extend(_expand(member, stack + (spec.group,)))
    seen: set[str] = set()
    for task in tasks:  # a member counted twice would weigh twice in the group's score
        if task.name in seen:
            raise UserError(f"{path}: group {spec.group!r} includes task {task.name!r} twice (listed twice, "
                            "or also through a member group); list each task once")
        seen.add(task.name)
    return tasks


def group_members(name: str) -> list[str] | None:
    """The task names a group expands to, or None when ``name`` is a task."""
    spec, _ = load_spec(name)
    if isinstance(spec, TaskSpec):
        return None
    return [t.name for t in resolve_tasks([name])]


def group_tree(names: list[str]) -> dict[str, list[str]]:
    """Every group among ``names`` (and inside them) -> its direct members, members first."""
    tree: dict[str, list[str]] = {}

    def visit(name: str) -> str:
        spec, path = load_spec(name)
        if isinstance(spec, TaskSpec):
            return spec.task
        members = []
        for m in spec.tasks:
            if m.endswith((".yaml", ".yml")) and not os.path.isabs(m):
                m = str(path.parent / m)
            members.append(visit(m))
        tree.setdefault(spec.group, members)
        return spec.group

    for n in names:
        visit(n)
    return tree
