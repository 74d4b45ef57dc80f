"""Shared fixtures. The real data is read from AIMED_DATA (CI: ../shared/data).

The results index on both backends: ``index_db`` (a fresh index a test, ids ``[sqlite]`` and
``[postgresql]``) and ``index_backend`` (module-scoped, for a module that fills one index
once and reads it in every test) run a test on an SQLite file and on a database of the one
throwaway PostgreSQL server of the session (``pg_server``: started when a test first asks
for it, stopped by ``pg_ctl`` at the end). Without PostgreSQL's binaries the
``[postgresql]`` runs are skipped, except in CI (``CI=true``), where that is a failure."""

import os
import uuid
from pathlib import Path

import pytest

import pg_server as pg_server_module

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


# ---- the results index on both backends -------------------------------------------------
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_server():
    """The session's PostgreSQL server (tests/pg_server.py: 127.0.0.1, a port of its own, a
    cluster in a temporary folder), or the one AIMED_TEST_PG_URL names."""
    why = pg_server_module.available()
    if why:
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    server = pg_server_module.start()
    try:
        yield server
    finally:
        server.stop()


def fresh_index(backend: str, folder: Path, request) -> str:
    """A new, empty index: an SQLite file path in ``folder``, or the URL of a new database on
    the session's server (CREATE DATABASE: nothing is shared between tests)."""
    if backend == "sqlite":
        return str(Path(folder) / f"index-{uuid.uuid4().hex[:8]}.sqlite")
    return request.getfixturevalue("pg_server").create_database(f"aimed_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def index_db(request, tmp_path) -> str:
    """A fresh results index for this test: an SQLite file in tmp_path, or a PostgreSQL URL."""
    return fresh_index(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=BACKENDS)
def index_backend(request) -> str:
    """"sqlite" or "postgresql", once a module: a module-scoped index is filled once a backend."""
    if request.param == "postgresql":
        request.getfixturevalue("pg_server")  # skipped (or failed in CI) here when there is none
    return request.param


@pytest.fixture(scope="session")
def new_index(request, tmp_path_factory):
    """``new_index(backend)``: a fresh index of that backend, for module-scoped fixtures."""
    return lambda backend: fresh_index(backend, tmp_path_factory.mktemp("index"), request)

