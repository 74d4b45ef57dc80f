"""Plugins (the built-in tasks among them) register loaders, metrics and spec folders.

A plugin is a module named by an ``aimed.plugins`` entry point; importing it registers
what it offers. The harness finds them here, at run time, so it never imports the
``tasks`` package by name and the import arrows of ARCHITECTURE.md hold.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Iterable, Union

from .registry import Registry
from .samples import BadRow, Sample
from .taskspec import DataSpec

# A loader reads one publisher's format: (resolved data path, the spec's data block) -> an
# item a row, or a BadRow for a row it cannot read (taskregistry reports or skips those).
Loader = Callable[[Path, DataSpec], Iterable[Union[Sample, BadRow]]]
LOADERS: Registry[Loader] = Registry("data loader")

SPEC_DIRS: list[Path] = []  # folders of built-in spec files, in plugin order
RUBRIC_DIRS: list[Path] = []  # folders of judge rubrics (judge/rubric.py), in plugin order

_loaded = False


def add_spec_dir(path: Path) -> None:
    if path not in SPEC_DIRS:
        SPEC_DIRS.append(path)


def add_rubric_dir(path: Path) -> None:
    if path not in RUBRIC_DIRS:
        RUBRIC_DIRS.append(path)


def load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in sorted(entry_points(group="aimed.plugins"), key=lambda e: e.name):
        importlib.import_module(ep.value)
