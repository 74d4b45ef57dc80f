"""Shared fixtures. The real data is read from AIMED_DATA (CI: ../shared/data)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AIMED_DATA", str(REPO.parent / "shared" / "data"))
DATA = Path(os.environ["AIMED_DATA"])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "cmexam" / "val.csv").exists():
        pytest.fail(f"real data not found under AIMED_DATA={DATA}")
    return DATA


def _corpus(data: Path) -> list[str]:
    """A little real text for the tiny tokenizers: CMExam questions and options."""
    import csv

    texts = []
    with (data / "cmexam" / "val.csv").open(encoding="utf-8-sig", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= 400:
                break
            texts.append(row["Question"] + "\n" + row["Options"] + "\n答案：" + row["Answer"])
    return texts


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, data_dir) -> Path:
    from aimed.harness.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", _corpus(data_dir),
                            arch="llama", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory, data_dir) -> Path:
    from aimed.harness.tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2", _corpus(data_dir),
                            arch="qwen2", seed=1)


@pytest.fixture
def cli(capsys):
    """Run `aimed-eval ...` in-process: (exit code, stdout, stderr)."""
    from aimed.harness.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
