"""The results index: concurrent writers, whole-run transactions, idempotent re-records
(each on an SQLite file and on PostgreSQL: ``index_db``), and files that are not an index."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from aimed.harness.errors import UserError
from aimed.harness.index import connect, record_run, record_run_dir
from pg_server import rows_of

WRITERS = 4
RUNS_EACH = 40
TASKS = ("t_mcq", "t_gen", "t_extra")


def fake_results(run_id: str, k: int) -> dict:
    """A results.json as `aimed-eval run` writes it, with numbers derived from k."""
    acc = (k % 17) / 17
    blocks = {"t_mcq": {"acc,none": acc, "acc_stderr,none": 0.01, "set_f1,none": 0.5, "set_f1_stderr,none": "N/A"},
              "t_gen": {"rougeL,none": acc / 2, "rougeL_stderr,none": 0.02, "char_f1,none": acc / 3,
                        "char_f1_stderr,none": 0.03},
              "t_extra": {"acc,none": 1 - acc, "acc_stderr,none": 0.05}}
    group = {"suite": {"score,none": (acc + acc / 2 + 1 - acc) / 3, "score_stderr,none": 0.02}}
    return {
        "results": {**group, **blocks}, "groups": group,
        "group_subtasks": {"suite": list(TASKS), **{t: [] for t in TASKS}},
        "configs": {t: {"task": t, "metrics": [m.split(",")[0] for m in b if "_stderr" not in m]}
                    for t, b in blocks.items()},
        "versions": {t: 1 for t in TASKS}, "higher_is_better": {}, "config": {"model": "hf"},
        "n-samples": {t: {"original": 20, "effective": 20} for t in TASKS}, "date": 1_700_000_000.0 + k,
        "aimed": {"run_id": run_id, "meta": {"stage": "sft", "base_model": f"base{k % 3}", "step": k},
                  "model": {"args": {"model": f"/ckpt/m{k}", "lora_model": []}, "fingerprint": f"fp{k}"},
                  "tasks": {t: {"mode": "loglikelihood", "version": 1, "data_hash": "d", "spec_hash": "s",
                                "main_metric": "rougeL" if t == "t_gen" else "acc"} for t in TASKS},
                  "categories": {"t_mcq": {"dept": {c: {"n": 5, "acc": acc, "acc_stderr": 0.1}
                                                    for c in ("内科", "外科", "儿科")}}},
                  "scored": {"t_mcq": {"acc": 20, "set_f1": 4}}},
    }


def _writer(db_path: str, worker: int, start) -> None:
    start.wait()  # all writers go at once
    for i in range(RUNS_EACH):
        k = worker * RUNS_EACH + i
        if i % 2:  # a fresh connection a run, as separate `aimed-eval run` processes do
            record_run_dir(db_path, f"/runs/{k}", fake_results(f"run{k}", k))
        else:
            db = connect(db_path)
            record_run(db, f"/runs/{k}", fake_results(f"run{k}", k))
            db.close()


def test_four_concurrent_writers_lose_no_row_and_corrupt_nothing(index_db):
    from pathlib import Path

    ctx = mp.get_context("spawn")
    start = ctx.Event()
    connect(index_db).close()  # created before the race (creating it is raced in test_index_postgres)
    procs = [ctx.Process(target=_writer, args=(index_db, w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS

    n = WRITERS * RUNS_EACH
    db = connect(index_db, readonly=True)
    if not index_db.startswith("postgresql"):
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == n
    assert db.execute("SELECT count(DISTINCT run_id) FROM runs").fetchone()[0] == n
    # per run: 5 task metrics + the group's score; 3 tasks + 1 group in task_meta; 3 categories
    assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == n * 6
    assert db.execute("SELECT count(*) FROM task_meta").fetchone()[0] == n * 4
    assert db.execute("SELECT count(*) FROM categories").fetchone()[0] == n * 3
    # every value arrived as written
    for k in (0, 37, n - 1):
        acc = (k % 17) / 17
        got = dict(rows_of(db.execute("SELECT metric, value FROM scores WHERE run_id=? AND task='t_mcq'",
                                      (f"run{k}",))))
        assert got == {"acc": pytest.approx(acc), "set_f1": 0.5}
        (row,) = rows_of(db.execute("SELECT base_model, stage, step, run_dir, checkpoint FROM runs WHERE run_id=?",
                                    (f"run{k}",)))
        assert row == (f"base{k % 3}", "sft", k, str(Path(f"/runs/{k}").resolve()), f"m{k}")
    assert db.execute("SELECT stderr FROM scores WHERE run_id='run0' AND metric='set_f1'").fetchone()[0] is None
    assert db.execute("SELECT n FROM scores WHERE run_id='run0' AND metric='set_f1'").fetchone()[0] == 4
    db.close()


def _in_transaction(db) -> bool:
    if isinstance(db, sqlite3.Connection):
        return db.in_transaction
    from psycopg.pq import TransactionStatus

    return db.conn.info.transaction_status != TransactionStatus.IDLE


def test_rerecording_a_run_replaces_it_and_a_failed_record_leaves_nothing(index_db, tmp_path):
    db = connect(index_db)
    record_run(db, tmp_path / "r", fake_results("r1", 3))
    record_run(db, tmp_path / "r", fake_results("r1", 5))  # same run id: replaced, not doubled
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM scores").fetchone()[0] == 6
    assert db.execute("SELECT value FROM scores WHERE task='t_mcq' AND metric='acc'").fetchone()[0] == \
        pytest.approx(5 / 17)

    bad = fake_results("r2", 7)
    bad["aimed"]["categories"]["t_mcq"]["dept"]["内科"]["n"] = object()  # not storable: the insert fails
    if isinstance(db, sqlite3.Connection):
        error = sqlite3.Error
    else:
        import psycopg

        error = psycopg.Error
    with pytest.raises(error):
        record_run(db, tmp_path / "r2", bad)
    assert not _in_transaction(db)
    assert db.execute("SELECT count(*) FROM runs WHERE run_id='r2'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM scores WHERE run_id='r2'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1  # r1 untouched
    db.close()


# SQLite only: a text file, a foreign SQLite file, a missing file and a folder given as the
# index are about files (PostgreSQL's newer and foreign databases: test_index_postgres).
def test_files_that_are_not_an_index_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not sqlite " * 100)
    with pytest.raises(UserError, match="not a results index"):
        connect(text)
    with pytest.raises(UserError, match="not a results index"):
        connect(text, readonly=True)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(UserError, match="not a results index of this aimed-eval"):
        connect(other)
    with pytest.raises(UserError, match="no results index there"):
        connect(tmp_path / "missing.sqlite", readonly=True)
    with pytest.raises(UserError, match="is a folder"):
        connect(tmp_path)
