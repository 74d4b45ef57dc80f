"""``leaderboard``, ``report`` and ``dashboard`` find the results index without ``--db``:
the last run's when it is under the current folder, ``./aimed_runs``, ``./aimed_demo``,
else the last run's wherever it is; each says which one it uses. ``tasks`` names the
tasks whose data is missing and where it looked."""

import argparse
import shutil
from pathlib import Path

import pytest

from aimed.harness.index import DB_NAME
from aimed.leaderboards import dashboard_cmd


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh working folder and response-cache folder (where the last index is noted)."""
    monkeypatch.setenv("AIMED_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("AIMED_DB", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_nothing_recorded_is_one_line_naming_where_it_looked(here, cli):
    code, out, err = cli("leaderboard")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("aimed-eval: error: no results index found")
    assert f"aimed_runs/{DB_NAME}" in err and f"aimed_demo/{DB_NAME}" in err and "--db" in err


def test_run_elsewhere_then_leaderboard_report_and_dashboard_without_db(here, cli, tiny_llama, monkeypatch, tmp_path,
                                                                         capsys):
    code, out, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--limit", "4", "--output_dir",
                         "runs2/x", "--no_cache")
    assert code == 0, err
    db = (here / "runs2" / DB_NAME).resolve()
    assert f"recorded in index: runs2/{DB_NAME}" in out
    # the last run's index, under this folder, wins over ./aimed_runs
    (here / "aimed_runs").mkdir()
    shutil.copyfile(db, here / "aimed_runs" / DB_NAME)
    code, board, err = cli("leaderboard")
    assert code == 0 and "demo_mcq" in board and "tiny-llama" in board, err
    assert err == f"aimed-eval: using the results index {db} (the index the last run recorded in; --db for another)\n"
    code, out, err = cli("report", "--format", "markdown", "--out", "r.md")
    assert code == 0 and (here / "r.md").is_file() and f"using the results index {db} " in err
    assert dashboard_cmd.check(argparse.Namespace(db=None, port=8501)) == db
    assert capsys.readouterr().err == f"aimed-eval: using the results index {db} (the index the last run recorded in; " \
                                      "--db for another)\n"
    # another folder with its own ./aimed_demo: that one, named as such
    other = tmp_path / "other"
    (other / "aimed_demo").mkdir(parents=True)
    shutil.copyfile(db, other / "aimed_demo" / DB_NAME)
    monkeypatch.chdir(other)
    code, board, err = cli("leaderboard", "--format", "csv")
    assert code == 0 and "demo_mcq" in board.splitlines()[0] and "tiny-llama" in board, board
    assert err == f"aimed-eval: using the results index aimed_demo/{DB_NAME} (./aimed_demo; --db for another)\n"
    # a folder with none of its own: the last run's index, wherever it is
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    code, board, err = cli("leaderboard")
    assert code == 0 and "tiny-llama" in board and f"using the results index {db} (the index the last run" in err
    # --db is used as given, silently
    code, board, err = cli("leaderboard", "--db", db)
    assert code == 0 and err == ""


def test_aimed_db_names_the_index_on_both_backends(here, cli, index_db, monkeypatch, tmp_path, capsys):
    """``AIMED_DB`` (a file, or a PostgreSQL URL) is the index ``import``, ``leaderboard``,
    ``report`` and ``dashboard`` use, silently; a URL is never noted as the last index (it
    may hold a password), so a folder's own index still wins once AIMED_DB is unset."""
    import json

    from aimed.harness import index_lookup
    from aimed.leaderboards import sample_index

    source = sample_index.build(tmp_path / "source.sqlite", tmp_path / "runs", n_runs=6, n_tasks=3, n_items=4)
    monkeypatch.setenv("AIMED_DB", index_db)
    code, imported, err = cli("import", tmp_path / "runs")
    assert code == 0 and "6 run(s) recorded in" in imported, err
    code, board, err = cli("leaderboard", "--format", "json")
    assert code == 0 and err == "", err
    rows = json.loads(board)["rows"]
    code, expected, _ = cli("leaderboard", "--db", source, "--format", "json")
    assert rows == json.loads(expected)["rows"] and len(rows) == 6
    code, out, err = cli("report", "--format", "markdown", "--out", "r.md")
    assert code == 0 and err == "" and rows[0]["run_id"] in (here / "r.md").read_text(encoding="utf-8")
    assert str(dashboard_cmd.check(argparse.Namespace(db=None, port=8501))) == index_db
    assert capsys.readouterr().err == ""
    noted = index_lookup.last_index()
    if index_db.startswith("postgresql"):
        import pg_server

        assert noted is None  # nothing noted: the URL holds a password
        assert pg_server.PASSWORD not in "".join(p.read_text(errors="replace") for p in (tmp_path / "cache").rglob("*")
                                                 if p.is_file())
        assert pg_server.PASSWORD not in imported and "recorded in postgresql://" in imported
    else:
        assert noted == Path(index_db).resolve()


def test_tasks_names_the_missing_and_where_it_looked(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AIMED_DATA", str(tmp_path / "nodata"))
    code, out, _ = cli("tasks", "--no_counts")
    table, note = out.split("\nmissing data for ", 1)
    missing = [row.split()[0] for row in table.splitlines() if " missing " in row]
    assert code == 0 and "cmexam" in missing and "demo_mcq" not in missing
    assert note.startswith(f"{len(missing)} task(s): {', '.join(missing)}\n")
    assert f"looked under {tmp_path / 'nodata'}, from AIMED_DATA\n" in note
    monkeypatch.delenv("AIMED_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out, _ = cli("tasks", "--no_counts")
    assert f"looked under {tmp_path / 'aimed_data'}, the default: AIMED_DATA is not set\n" in out
