"""The results index on both backends: an SQLite file and a real PostgreSQL server
(tests/pg_server.py starts a throwaway one on 127.0.0.1). The same runs give the same
leaderboard, report and dashboard data on both; 8 writer processes lose no row on either;
an older index upgrades in place; a newer or foreign one, a bad URL, a server that is
down and a wrong password are one line without the password; a connection lost mid-write
records nothing and a rerun records the run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pg_server

# The server is the session's (tests/conftest.py's ``pg_server``): without PostgreSQL the
# [postgresql] runs are skipped off CI and fail in CI (CI=true), as a missing browser does.
FIXTURE_V2 = Path(__file__).parent / "data" / "index_v2.sqlite"  # written by the schema-2 code
WRITERS, RUNS_EACH = 8, 10


@pytest.fixture
def pg(pg_server):
    return pg_server


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_llama, tiny_qwen2) -> list[Path]:
    """Two checkpoints' runs (two fingerprints: the leaderboard shows each)."""
    from aimed.harness.cli import main

    root = tmp_path_factory.mktemp("pg-runs")
    for name, model, stage in (("a", tiny_llama, "sft"), ("b", tiny_qwen2, "dpo")):
        assert main(["run", "--model", str(model), "--tasks", "demo_mcq,demo_medterm", "--limit", "4",
                     "--output_dir", str(root / name), "--no_index", "--no_cache", "--quiet",
                     "--meta", f"stage={stage},base_model=tiny"]) == 0
    return [root / "a", root / "b"]


@pytest.fixture
def index(index_db) -> str:
    return index_db


def _board(cli, db: str) -> dict:
    code, out, err = cli("leaderboard", "--db", db, "--format", "json")
    assert code == 0, err
    board = json.loads(out)
    for row in board["rows"]:
        row.pop("date", None)
    return board


def test_import_leaderboard_report_and_dashboard_agree_on_both_backends(index, runs, cli, tmp_path):
    reference = str(tmp_path / "reference.sqlite")
    for db in (reference, index):
        code, out, err = cli("import", *runs, "--db", db)
        assert code == 0, err
    board = _board(cli, index)
    assert board == _board(cli, reference)
    assert [r["stage"] for r in board["rows"]] == ["sft", "dpo"] and board["tasks"] == ["demo_mcq", "demo_medterm"]
    code, out, err = cli("report", "--db", index, "--format", "markdown", "--out", tmp_path / "r.md")
    assert code == 0, err
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert pg_server.PASSWORD not in text and "demo_medterm" in text

    from aimed.leaderboards.dashboard import data

    version = data.index_version(index)
    rows = data.leaderboard(index, version)["rows"]
    assert [r["stage"] for r in rows] == ["sft", "dpo"]
    run_id = rows[0]["run_id"]
    assert data.category_scores(index, version, run_id) == data.category_scores(reference, data.index_version(reference),
                                                                                run_id)


WRITER = """
import json, sys, uuid
from pathlib import Path
from aimed.harness.index import connect, record_run
db, run_dir, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
conn = connect(db if db.startswith("postgresql") else Path(db))
for _ in range(n):
    results["aimed"]["run_id"] = uuid.uuid4().hex
    record_run(conn, run_dir, results)
conn.close()
"""


def test_eight_writer_processes_lose_no_row(index, runs):
    from aimed.harness.index import connect

    connect(index if index.startswith("postgresql") else Path(index)).close()  # created before the race
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, index, str(runs[i % 2]), str(RUNS_EACH)],
                              stderr=subprocess.PIPE, text=True) for i in range(WRITERS)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()[-2000:]
    db = connect(index if index.startswith("postgresql") else Path(index), readonly=True)
    try:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == WRITERS * RUNS_EACH
        per_run = {r[0] for r in db.execute("SELECT count(*) FROM scores GROUP BY run_id")}
        assert len(per_run) <= 2 and min(per_run) > 0  # every run whole: run a's or run b's count of scores
        total = db.execute("SELECT count(*) FROM scores").fetchone()[0]
        assert total == sum(db.execute("SELECT count(*) FROM scores WHERE run_id = ?", (r[0],)).fetchone()[0]
                            for r in db.execute("SELECT run_id FROM runs").fetchall())
    finally:
        db.close()


def test_an_older_sqlite_index_upgrades_in_place(tmp_path, cli):
    import shutil
    import sqlite3

    from aimed.harness.index import SCHEMA_VERSION

    old = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURE_V2, old)
    assert sqlite3.connect(old).execute("PRAGMA user_version").fetchone()[0] == 2
    code, out, err = cli("leaderboard", "--db", old, "--format", "json")  # a reader upgrades it first
    assert code == 0, err and len(json.loads(out)["rows"]) == 1
    db = sqlite3.connect(old)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r[0] for r in db.execute("SELECT version FROM aimed_schema")] == [SCHEMA_VERSION]
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2  # nothing lost
    assert "scores_by_task" in {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def _set_newer(index: str) -> None:
    from aimed.harness.index import connect

    db = connect(index if index.startswith("postgresql") else Path(index))
    db.execute("INSERT INTO aimed_schema (version, upgraded) VALUES (99, 0)")
    if not index.startswith("postgresql"):
        db.execute("PRAGMA user_version=99")
    db.close()


def _foreign(index: str) -> None:
    if index.startswith("postgresql"):
        import psycopg

        with psycopg.connect(index, autocommit=True) as conn:
            conn.execute("CREATE TABLE patients (id integer)")
    else:
        import sqlite3

        sqlite3.connect(index).execute("CREATE TABLE patients (id integer)")


@pytest.mark.parametrize("damage,message", [(_set_newer, "newer than this aimed-eval's"),
                                            (_foreign, "not a results index of this aimed-eval")])
def test_a_newer_or_foreign_database_is_refused_in_one_line(index, damage, message, cli, runs):
    damage(index)
    for argv in (("leaderboard", "--db", index), ("import", runs[0], "--db", index)):
        code, out, err = cli(*argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert pg_server.PASSWORD not in err


def test_bad_urls_and_a_wrong_password_are_one_line_without_the_password(pg, runs, cli):
    good = pg.create_database("aimed_urls")
    cases = [(good.replace(pg_server.PASSWORD, "not-the-password"), "refused the user or password"),
             (re.sub(r":\d+/", ":1/", good), "cannot reach the PostgreSQL server"),  # nothing listens on port 1
             (good.replace("/aimed_urls", "/aimed_missing"), "does not exist"),
             ("postgresql://u:pw@127.0.0.1:notaport/db", "not a valid PostgreSQL URL")]
    for url, message in cases:
        for argv in (("leaderboard", "--db", url), ("import", runs[0], "--db", url)):
            code, out, err = cli(*argv)
            assert code == 2 and message in err, (url, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
            assert pg_server.PASSWORD not in err and "not-the-password" not in err and ":pw@" not in err


def test_a_connection_lost_mid_write_records_nothing_and_a_rerun_records_it(pg, runs, monkeypatch):
    import psycopg

    import aimed.harness.index as index_module
    from aimed.harness.errors import UserError

    url = pg.create_database("aimed_lost")
    results = json.loads((runs[0] / "results.json").read_text(encoding="utf-8"))
    db = index_module.connect(url)
    pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]

    class KillsTheConnection(list):
        """The categories' rows: reading them ends the writer's connection on the server
        (pg_terminate_backend), mid-transaction, after the run's other rows went in."""

        def __iter__(self):
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            return super().__iter__()

    real = index_module.record
    monkeypatch.setattr(index_module, "record", lambda d, run, scores, metas, cats:
                        real(d, run, scores, metas, KillsTheConnection(cats)))
    with pytest.raises(UserError, match="connection") as lost:
        index_module.record_run(db, runs[0], results)
    assert pg_server.PASSWORD not in lost.value.message
    monkeypatch.undo()
    fresh = index_module.connect(url, readonly=True)
    assert fresh.execute("SELECT count(*) FROM runs").fetchone()[0] == 0  # nothing half-written
    assert fresh.execute("SELECT count(*) FROM scores").fetchone()[0] == 0
    fresh.close()
    again = index_module.connect(url)
    index_module.record_run(again, runs[0], results)  # the rerun records it whole
    assert again.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert again.execute("SELECT count(*) FROM scores").fetchone()[0] > 0
    again.close()


def test_a_pipeline_records_into_the_index(index_db, cli, tmp_path):
    """The pipeline's base run and every checkpoint's run go to the index (the one pipeline
    test run on both backends: it trains, so the others stay on SQLite); its state file
    names a PostgreSQL index without the password."""
    import shutil

    import yaml

    from aimed.harness.tinymodel import build_tiny_model
    from aimed.trainers.demo_cmd import demo_texts

    demo = Path(__file__).resolve().parents[2] / "trainers" / "demo_data"
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):
        shutil.copyfile(demo / name, tmp_path / name)
    build_tiny_model(tmp_path / "tiny", demo_texts(tmp_path), arch="llama", seed=0, max_positions=512)
    url = index_db
    config = {"output_root": "out", "index_db": url, "base_models": [{"name": "tiny", "model": "tiny"}],
              "stages": ["pt"], "defaults": {"finetune": "full", "only_cpu": True, "template_name": "raw", "seed": 0},
              "stage_config": {"pt": {"train_files": ["pretrain.txt"], "max_length": 64, "max_steps": 2,
                                      "save_steps": 2, "per_device_train_batch_size": 8}},
              "eval": {"tasks": ["demo_mcq"], "limit": 4},
              "stage_gates": {"pt": {"rules": {"*": {"*": {"max_drop": 1.0}}}}}}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, out, err = cli("pipeline", "--config", tmp_path / "pipeline.yaml")
    assert code == 0, err
    board = _board(cli, url)
    assert [(r["stage"], r["checkpoint"]) for r in board["rows"]] == [("base", "tiny"), ("pt", "pt/checkpoint-2")]
    state = (tmp_path / "out" / "pipeline_state.json").read_text(encoding="utf-8")
    assert pg_server.PASSWORD not in state
    assert ("***" in state) == url.startswith("postgresql")
