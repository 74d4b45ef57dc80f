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
