"""ARCHITECTURE.md's import arrows: harness imports no other folder, nothing imports
trainers, and leaderboards/reports never import torch."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("harness", "tasks", "trainers", "leaderboards", "reports")


def imports_of(folder: str) -> set[str]:
    names = set()
    for py in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def test_harness_imports_no_other_folder():
    bad = {n for n in imports_of("harness") if n.split(".")[:2] in [["aimed", f] for f in FOLDERS[1:]]}
    assert not bad, bad


def test_nothing_imports_trainers():
    for folder in FOLDERS:
        if folder != "trainers":
            assert not any(n.startswith("aimed.trainers") for n in imports_of(folder)), folder


def test_leaderboards_and_reports_never_import_torch():
    for folder in ("leaderboards", "reports"):
        assert not any(n.split(".")[0] in ("torch", "transformers") for n in imports_of(folder)), folder
