"""Leaderboards from real runs: tiny checkpoints along a training path (base -> sft steps),
scored by `aimed-eval run`, recorded in the index, queried and printed; lm-eval results
imported next to them; bad input.

Each test that reads an index runs on both backends (``[sqlite]``, ``[postgresql]``): the
runs are scored once, into SQLite, and their rows copied into a PostgreSQL database
(``lineage_db``); imports and synthetic indexes are recorded into each backend directly."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aimed.leaderboards import query
from pg_server import copy_index, rows_of

RUN_FLAGS = ("--tasks", "demo", "--limit", "6", "--no_cache", "--quiet", "--device", "cpu", "--dtype", "float32")


def _variant(src: Path, dst: Path, seed, manifest) -> Path:
    """A copy of a tiny checkpoint, its weights nudged (another checkpoint of one training
    run: other fingerprint, other scores), with its lineage manifest."""
    shutil.copytree(src, dst)
    if seed is not None:
        import torch
        from safetensors.torch import load_file, save_file

        f = dst / "model.safetensors"
        tensors = load_file(f)
        g = torch.Generator().manual_seed(seed)
        for k, v in tensors.items():
            if v.is_floating_point() and v.numel() > 1:
                tensors[k] = v + 0.5 * v.std() * torch.randn(v.shape, generator=g)
        save_file(tensors, f, metadata={"format": "pt"})
    if manifest:
        (dst / "aimed_checkpoint.json").write_text(json.dumps(manifest), encoding="utf-8")
    return dst


def _run(*argv) -> None:
    from aimed.harness.cli import main

    assert main([str(a) for a in argv]) == 0


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lineage(tiny_llama, tiny_qwen2, tmp_path_factory):
    """Five checkpoints of two base models, six runs (one checkpoint scored twice), one index."""
    root = tmp_path_factory.mktemp("lineage")
    models, runs = root / "models", root / "runs"
    db = root / "idx.sqlite"
    base = _variant(tiny_llama, models / "llama-base", None, {"stage": "base", "base_model": "tiny-llama"})
    sft = {step: _variant(tiny_llama, models / "sft" / f"checkpoint-{step}", step,
                          {"stage": "sft", "base_model": "tiny-llama", "parent": str(base), "step": step})
           for step in (100, 200, 300)}
    q_sft = _variant(tiny_qwen2, models / "qwen-sft-50", 7, None)
    _run("run", "--model", base, *RUN_FLAGS, "--output_dir", runs / "llama-base", "--db", db)
    for step, m in sft.items():
        _run("run", "--model", m, *RUN_FLAGS, "--output_dir", runs / f"llama-sft{step}", "--db", db)
    _run("run", "--model", tiny_qwen2, *RUN_FLAGS, "--output_dir", runs / "qwen-base", "--db", db,
         "--meta", "stage=base,base_model=tiny-qwen2")
    # no --db: recorded in aimed_index.sqlite next to the run folder; imported below
    _run("run", "--model", q_sft, *RUN_FLAGS, "--output_dir", runs / "qwen-sft50",
         "--meta", f"stage=sft,base_model=tiny-qwen2,step=50,parent={tiny_qwen2}")
    # the sft-300 checkpoint scored again, on one task: its row shows this latest run
    _run("run", "--model", sft[300], "--tasks", "demo_mcq", "--limit", "6", "--no_cache", "--quiet",
         "--device", "cpu", "--dtype", "float32", "--output_dir", runs / "llama-sft300-again", "--db", db)
    _run("import", runs / "qwen-sft50", "--db", db)
    return {"root": root, "db": db, "runs": runs, "models": models, "sft": sft}


@pytest.fixture(scope="module")
def lineage_db(lineage, index_backend, new_index) -> str:
    """The lineage's index on this module's backend: the SQLite file the runs recorded in, or
    a PostgreSQL database holding the same rows."""
    if index_backend == "sqlite":
        return str(lineage["db"])
    return copy_index(lineage["db"], new_index("postgresql"))


def test_runs_are_recorded_with_lineage_main_metrics_scores_and_categories(lineage, lineage_db):
    runs, db = lineage["runs"], lineage_db
    # without --db: the output root's aimed_index.sqlite
    default = query.open_index(runs / "aimed_index.sqlite")
    assert [r[0] for r in default.execute("SELECT run_dir FROM runs")] == [str((runs / "qwen-sft50").resolve())]
    conn = query.open_index(db)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 7  # six runs and one import
    for name in ("llama-base", "llama-sft100", "llama-sft200", "llama-sft300", "qwen-base", "qwen-sft50",
                 "llama-sft300-again"):
        res = _results(runs / name)
        aimed = res["aimed"]
        assert aimed["tasks"]["demo_mcq"]["main_metric"] == "acc"
        if "demo_medterm" in aimed["tasks"]:
            assert aimed["tasks"]["demo_medterm"]["main_metric"] == "rougeL"  # the spec's primary_metric
        info = query.run_info(conn, aimed["run_id"])
        assert info["fingerprint"] == aimed["model"]["fingerprint"]
        assert info["run_dir"] == str((runs / name).resolve())
        assert info["date"] == pytest.approx(res["date"])
        assert set(info["tasks"]) == set(aimed["tasks"]) | set(res["groups"])
        stored = {(r["task"], r["metric"]): (r["value"], r["stderr"]) for r in conn.execute(
            "SELECT task, metric, value, stderr FROM scores WHERE run_id=?", (aimed["run_id"],))}
        for task, block in res["results"].items():
            for key, value in block.items():
                if "," in key and "_stderr" not in key:
                    metric = key.split(",")[0]
                    se = block.get(f"{metric}_stderr,none")
                    assert stored.pop((task, metric)) == pytest.approx(
                        (value, se if isinstance(se, float) else None))
        assert stored == {}
        cats = query.category_scores(conn, aimed["run_id"], "demo_mcq")
        cell = res["aimed"]["categories"]["demo_mcq"]["Clinical Department"]
        got = {c["category"]: (c["value"], c["n"]) for c in cats
               if c["column"] == "Clinical Department" and c["metric"] == "acc"}
        assert got == {k: (pytest.approx(v["acc"]), v["n"]) for k, v in cell.items()}
    info = query.run_info(conn, _results(runs / "llama-sft200")["aimed"]["run_id"][:10])  # a prefix will do
    assert (info["base_model"], info["stage"], info["step"], info["parent"]) == \
        ("tiny-llama", "sft", 200, str(lineage["models"] / "llama-base"))
    assert info["checkpoint"] == "sft/checkpoint-200"
    info = query.run_info(conn, _results(runs / "qwen-base")["aimed"]["run_id"])
    assert (info["base_model"], info["stage"], info["step"]) == ("tiny-qwen2", "base", None)


def test_leaderboard_one_row_a_checkpoint_with_average_and_best_of_each_stage(lineage, lineage_db):
    runs, db = lineage["runs"], lineage_db
    board = query.leaderboard(query.open_index(db))
    assert board.tasks == ["demo_mcq", "demo_medterm", "demo"]
    assert board.metrics == {"demo_mcq": "acc", "demo_medterm": "rougeL", "demo": "score"}
    assert board.groups == ["demo"]
    keys = [(r.base_model, r.stage, r.step) for r in board.rows]
    assert keys == [("tiny-llama", "base", None), ("tiny-llama", "sft", 100), ("tiny-llama", "sft", 200),
                    ("tiny-llama", "sft", 300), ("tiny-qwen2", "base", None), ("tiny-qwen2", "sft", 50)]
    by_dir = {Path(r.run_dir).name: r for r in board.rows}
    assert "llama-sft300" not in by_dir  # replaced by its latest run
    again = by_dir["llama-sft300-again"]
    assert set(again.scores) == {"demo_mcq"} and again.average is None
    for name, row in by_dir.items():
        res = _results(runs / name)["results"]
        assert row.scores["demo_mcq"][:2] == pytest.approx((res["demo_mcq"]["acc,none"],
                                                            res["demo_mcq"]["acc_stderr,none"]))
        if row.average is not None:
            assert row.average == pytest.approx((res["demo_mcq"]["acc,none"] + res["demo_medterm"]["rougeL,none"]) / 2)
            assert row.scores["demo"][0] == pytest.approx(res["demo"]["score,none"])
    # the best of each (base model, stage): the highest average, exactly one
    for key in {(r.base_model, r.stage) for r in board.rows}:
        group = [r for r in board.rows if (r.base_model, r.stage) == key and r.average is not None]
        marked = [r for r in board.rows if (r.base_model, r.stage) == key and r.best_in_stage]
        assert len(marked) == 1 and marked[0].average == max(r.average for r in group)
    sft = [r for r in board.rows if r.base_model == "tiny-llama" and r.stage == "sft" and r.average is not None]
    assert len({round(r.average, 6) for r in sft}) > 1  # the nudged checkpoints really score differently


def test_leaderboard_command_formats_and_filters(lineage_db, cli):
    db = lineage_db
    board = query.leaderboard(query.open_index(db))
    best = {r.checkpoint for r in board.rows if r.best_in_stage}

    code, out, err = cli("leaderboard", "--db", db)
    assert code == 0, err
    assert out.index("== tiny-llama ==") < out.index("== tiny-qwen2 ==")
    # the demo suite is the headline: its score carries the ★, beside it, no separate average
    assert "demo_medterm" in out and "rougeL" in out and "suite score" in out and "average" not in out
    shown = {}
    for line in out.splitlines():
        tokens = line.replace("★", "").split()
        if tokens and tokens[0] in ("base", "sft"):
            shown[tokens[1]] = "★" in line
            row = next(r for r in board.rows if r.checkpoint == tokens[1])
            if row.average is not None:
                assert f"{row.average:.4f}  ★" in line if "★" in line else f"{row.average:.4f}" in line
            assert query.date_text(row.date) in line  # the one date format
    assert shown == {r.checkpoint: r.checkpoint in best for r in board.rows} and len(shown) == 6

    code, out, _ = cli("leaderboard", "--db", db, "--format", "markdown")
    lines = out.splitlines()
    assert lines[0].startswith("| base model | stage | checkpoint | step | demo_mcq (acc) |")
    assert lines[0].endswith("| demo (suite score) | date |")
    assert sum("★" in line for line in lines[2:-2]) == len(best)
    assert all(line.endswith(f"| {query.date_text(r.date)} |") for line, r in zip(lines[2:], board.rows))

    code, out, _ = cli("leaderboard", "--db", db, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["run_id"] for r in rows] == [r.run_id for r in board.rows]
    assert [float(r["demo_mcq"]) for r in rows] == pytest.approx([r.scores["demo_mcq"][0] for r in board.rows])
    assert [r["best_in_stage"] for r in rows].count("1") == len(best)

    code, out, _ = cli("leaderboard", "--db", db, "--format", "json")
    assert json.loads(out) == json.loads(json.dumps(board.to_dict()))

    code, out, _ = cli("leaderboard", "--db", db, "--format", "json", "--base_model", "tiny-qwen2", "--stage", "sft")
    got = json.loads(out)
    assert [(r["base_model"], r["stage"], r["step"]) for r in got["rows"]] == [("tiny-qwen2", "sft", 50)]

    code, out, _ = cli("leaderboard", "--db", db, "--format", "json", "--tasks", "demo_mcq")
    got = json.loads(out)
    assert got["tasks"] == ["demo_mcq"]
    for r in got["rows"]:  # one task shown: the average is its score, every checkpoint has it
        assert r["average"] == pytest.approx(r["scores"]["demo_mcq"]["value"])
    assert len(got["rows"]) == 6


def test_medqa_leaderboard_fits_a_terminal_with_one_headline(index_db, tmp_path, cli):
    """The suite's members and its score by default (120 columns), every subject and metric
    with --all_metrics; the ★ on the suite score, which is the rows' average."""
    from aimed.leaderboards.sample_index import build

    db = build(index_db, tmp_path / "runs", n_runs=12, n_tasks=12, n_items=6)
    board = query.leaderboard(query.open_index(db))
    assert board.headline == "medqa" and board.members["medqa"] == ["cmexam", "medterm", "abstractqa", "cmmlu_medical"]
    assert all(r.average == pytest.approx(r.scores["medqa"][0]) for r in board.rows)
    code, out, err = cli("leaderboard", "--db", db)
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 120
    header = next(line for line in out.splitlines() if line.startswith("stage"))
    assert header.split() == ["stage", "checkpoint", "step", "cmexam", "medterm", "abstractqa", "cmmlu_medical",
                              "medqa", "date"]
    assert "cmmlu_anatomy" not in out and "--all_metrics" in out
    stars = [line for line in out.splitlines() if "★" in line and not line.startswith("★")]
    assert len(stars) == sum(r.best_in_stage for r in board.rows)
    for line in stars:  # the star right after the suite score, once a line
        tokens = line.split()
        assert tokens.count("★") == 1 and tokens[tokens.index("★") - 1] in {f"{r.average:.4f}" for r in board.rows}
    code, out, err = cli("leaderboard", "--db", db, "--all_metrics")
    assert code == 0, err
    for name in ("cmmlu_anatomy", "cmmlu_virology", "rouge1", "char_f1"):
        assert name in out, name


def test_progression_orders_stage_after_stage_by_step(lineage_db, cli, tmp_path, new_index, index_backend):
    db = lineage_db
    rows = query.progression(query.open_index(db), tasks=["demo_mcq"])
    llama = [(r["stage"], r["step"], r["x"]) for r in rows if r["base_model"] == "tiny-llama" and r["task"] == "demo_mcq"]
    assert llama == [("base", None, 0), ("sft", 100, 1), ("sft", 200, 2), ("sft", 300, 3)]
    assert {r["task"] for r in rows} == {"demo_mcq", query.AVERAGE}

    code, out, err = cli("leaderboard", "--db", db, "--progression", "--tasks", "demo_mcq")
    assert code == 0, err
    assert out.startswith("stage progression: demo_mcq")
    llama_block = out.split("== tiny-llama ==")[1].split("== tiny-qwen2 ==")[0]
    steps = [line.split()[0] for line in llama_block.splitlines() if "checkpoint-" in line]
    assert steps == ["100", "200", "300"]
    assert llama_block.index("base ") < llama_block.index("sft ")

    # stage order over a whole pipeline: base, pt, sft, ppo, dpo; steps rising within each
    from aimed.leaderboards.sample_index import build

    sample = build(new_index(index_backend), tmp_path / "runs", n_runs=60, n_tasks=4, n_items=8)
    # with a suite the headline line is the suite's (no "average" line repeating it)
    points = query.progression(query.open_index(sample))
    assert not [r for r in points if r["task"] == query.AVERAGE]
    rows = [r for r in points if r["task"] == "medqa"]
    for base_model in {r["base_model"] for r in rows}:
        path = [(r["stage_index"], r["step"] or 0) for r in rows if r["base_model"] == base_model]
        assert path == sorted(path) and path[0] == (0, 0)
        assert [r["stage"] for r in rows if r["base_model"] == base_model][1] == "pt"
    assert {r["stage"] for r in rows} == {"base", "pt", "sft", "ppo", "dpo"}


def test_sample_index_is_consistent_down_to_the_items(index_db, tmp_path):
    from aimed.leaderboards.sample_index import build

    db = build(index_db, tmp_path / "runs", n_runs=120, n_tasks=10, n_items=12)
    conn = query.open_index(db)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 120
    if not index_db.startswith("postgresql"):
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    board = query.leaderboard(conn)
    assert len(board.rows) == conn.execute("SELECT count(DISTINCT fingerprint) FROM runs").fetchone()[0] == 116
    assert board.groups == ["cmmlu_medical", "medqa"] and len(board.tasks) == 12
    row = next(r for r in board.rows if r.stage == "sft")
    run_dir = Path(row.run_dir)
    for task in ("cmexam", "medterm"):
        lines = [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]
        metric = row.scores[task][2]
        assert len(lines) == 12
        assert row.scores[task][0] == pytest.approx(sum(x[metric] for x in lines) / 12)
    cats = [c for c in query.category_scores(conn, row.run_id, "cmexam") if c["column"] == "Difficulty level"]
    assert sum(c["n"] for c in cats) == 12
    dpo = [r for r in board.rows if r.stage == "dpo" and r.base_model == "qwen2-7b"]
    base = [r for r in board.rows if r.stage == "base" and r.base_model == "qwen2-7b"]
    assert max(r.average for r in dpo) > base[0].average  # training pays off, as in real pipelines


def _export_and_lm_eval(model: Path, out: Path) -> Path:
    """lm-evaluation-harness 0.4.13 on the exported demo tasks, results saved as its CLI does."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    _run("export-lm-eval", "--tasks", "demo", "--out", out / "tasks", "--limit", "6")
    tracker = EvaluationTracker(output_path=str(out / "lm_eval_out"))
    res = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={model},dtype=float32,add_bos_token=False", tasks=["aimed_demo"],
        task_manager=TaskManager(include_path=str(out / "tasks"), include_defaults=False), batch_size=8,
        device="cpu", evaluation_tracker=tracker, random_seed=0, numpy_random_seed=0, torch_random_seed=0,
        fewshot_random_seed=0)
    tracker.save_results_aggregated(results=res, samples=None)
    (found,) = (out / "lm_eval_out").rglob("results_*.json")
    return found


@pytest.fixture(scope="module")
def lm_eval_run(lineage, tmp_path_factory) -> tuple[Path, Path]:
    """lm-eval's output folder and results file of the sft-200 checkpoint (one lm-eval run
    for both backends)."""
    out = tmp_path_factory.mktemp("lm-eval")
    return out / "lm_eval_out", _export_and_lm_eval(lineage["sft"][200], out)


def test_import_lm_eval_results_of_a_real_lm_eval_run(lineage, lm_eval_run, index_db, cli):
    folder, found = lm_eval_run
    db = copy_index(lineage["db"], index_db)
    code, out, err = cli("import", folder, "--db", db)
    assert code == 0 and "imported lm-eval run" in out, err
    code, _, err = cli("import", found, "--db", db)  # again: replaced, not doubled
    assert code == 0, err
    conn = query.open_index(db)
    assert conn.execute("SELECT count(*) FROM runs WHERE source='lm-eval'").fetchone()[0] == 1
    board = query.leaderboard(conn, stages=["sft"], base_models=["tiny-llama"])
    theirs = next(r for r in board.rows if r.source == "lm-eval")
    ours = next(r for r in board.rows if r.run_dir.endswith("llama-sft200"))
    # lineage from the checkpoint's manifest; the exported task under its aimed-eval name
    assert (theirs.stage, theirs.step, theirs.checkpoint) == ("sft", 200, "sft/checkpoint-200 [lm-eval]")
    data = json.loads(found.read_text(encoding="utf-8"))
    assert theirs.scores["demo_mcq"][:2] == pytest.approx((data["results"]["aimed_demo_mcq"]["acc,none"],
                                                           data["results"]["aimed_demo_mcq"]["acc_stderr,none"]))
    # same checkpoint, same items, same prompts: the same accuracy as aimed-eval's own run
    assert theirs.scores["demo_mcq"][0] == pytest.approx(ours.scores["demo_mcq"][0])
    # lm-eval scores the exported term task with chrf, not rougeL: shown as such, kept out of averages
    assert theirs.scores["demo_medterm"][2] == "chrf" and theirs.average is None
    code, out, _ = cli("leaderboard", "--db", db, "--stage", "sft")
    assert "(chrf)" in out and "[lm-eval]" in out


def test_import_lm_eval_layout_with_filters_groups_and_meta(index_db, cli, tmp_path):
    out = tmp_path / "out" / "org__model"
    out.mkdir(parents=True)
    data = {
        "results": {"medgroup": {"alias": "medgroup", "acc,none": 0.6, "acc_stderr,none": 0.04},
                    "qa_a": {"alias": " - qa_a", "acc,none": 0.5, "acc_stderr,none": 0.05},
                    "qa_b": {"alias": " - qa_b", "acc,none": 0.7, "acc_stderr,none": "N/A"},
                    "gsm": {"alias": "gsm", "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.1,
                            "exact_match,flexible-extract": 0.3, "exact_match_stderr,flexible-extract": 0.1}},
        "groups": {"medgroup": {"alias": "medgroup", "acc,none": 0.6, "acc_stderr,none": 0.04}},
        "group_subtasks": {"medgroup": ["qa_a", "qa_b"], "gsm": []},
        "configs": {"qa_a": {"task": "qa_a", "metric_list": [{"metric": "acc"}], "output_type": "multiple_choice"},
                    "qa_b": {"task": "qa_b", "output_type": "multiple_choice"},
                    "gsm": {"task": "gsm", "metric_list": [{"metric": "exact_match"}], "output_type": "generate_until"}},
        "versions": {"qa_a": 1.0, "qa_b": 2, "gsm": 3.0, "medgroup": 0},
        "n-samples": {"qa_a": {"original": 40, "effective": 40}, "qa_b": {"original": 10, "effective": 10},
                      "gsm": {"original": 8, "effective": 8}},
        "higher_is_better": {"qa_a": {"acc": True}}, "config": {"model": "hf",
                                                                "model_args": {"pretrained": "org/model-7b"}},
        "model_name": "org/model-7b", "date": 1_730_000_000.5, "task_hashes": {"qa_a": "abc"},
    }
    (out / "results_2024-10-27T03-33-20.json").write_text(json.dumps(data), encoding="utf-8")
    db = index_db
    code, stdout, err = cli("import", tmp_path / "out", "--db", db, "--meta", "stage=dpo,base_model=model-7b,step=40")
    assert code == 0, err
    conn = query.open_index(db)
    board = query.leaderboard(conn)
    (row,) = board.rows
    assert (row.base_model, row.stage, row.step, row.source) == ("model-7b", "dpo", 40, "lm-eval")
    assert row.date == 1_730_000_000.5 and row.checkpoint == "model-7b [lm-eval]"
    assert board.tasks == ["qa_a", "qa_b", "gsm", "medgroup"] and board.groups == ["medgroup"]
    assert board.metrics == {"qa_a": "acc", "qa_b": "acc", "gsm": "exact_match,strict-match", "medgroup": "acc"}
    assert row.scores["qa_b"] == (0.7, None, "acc")
    assert row.average == pytest.approx((0.5 + 0.7 + 0.25) / 3)
    metrics = {m for (m,) in rows_of(conn.execute("SELECT metric FROM scores WHERE task='gsm'"))}
    assert metrics == {"exact_match,strict-match", "exact_match,flexible-extract"}
    meta = dict(rows_of(conn.execute("SELECT task, data_hash FROM task_meta")))
    assert meta == {"qa_a": "abc", "qa_b": None, "gsm": None, "medgroup": None}


def test_bad_input_one_line_exit_2_nothing_written(lineage, index_db, cli, tmp_path):
    db = copy_index(lineage["db"], index_db)  # the missing and text files below are SQLite's own cases
    before = query.open_index(db).execute("SELECT count(*) FROM runs").fetchone()[0]

    def bad(*argv, says):
        code, out, err = cli(*argv)
        assert code == 2, (argv, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and says in err, err

    bad("leaderboard", "--db", tmp_path / "missing.sqlite", says="no results index there")
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database " * 200)
    bad("leaderboard", "--db", text, says="not a results index")
    bad("leaderboard", "--db", db, "--stage", "sfft", says="did you mean 'sft'?")
    bad("leaderboard", "--db", db, "--base_model", "tiny-lama", says="did you mean 'tiny-llama'")
    bad("leaderboard", "--db", db, "--tasks", "demo_mcqq", says="did you mean 'demo_mcq'")
    bad("leaderboard", "--db", db, "--format", "xml", says="invalid choice")

    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "results.json").write_text('{"results": {', encoding="utf-8")
    not_results = tmp_path / "results_2024.json"
    not_results.write_text('{"hello": 1}', encoding="utf-8")
    no_id = tmp_path / "noid"
    no_id.mkdir()
    (no_id / "results.json").write_text('{"results": {}, "aimed": {}}', encoding="utf-8")
    good = lineage["runs"] / "qwen-sft50"
    bad("import", good, tmp_path / "nope", "--db", db, says="nope: no such file or folder")
    bad("import", good, corrupt, "--db", db, says="not valid JSON")
    bad("import", good, not_results, "--db", db, says="not a results file")
    bad("import", no_id, "--db", db, says="without 'aimed.run_id'")
    bad("import", tmp_path / "corrupt", "--db", text, says="not valid JSON")
    bad("import", good, "--db", text, says="not a results index")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad("import", empty, "--db", db, says="holds no results.json")
    assert query.open_index(db).execute("SELECT count(*) FROM runs").fetchone()[0] == before
    # a run with a --db that is not an index stops before scoring: no run folder
    bad("run", "--model", lineage["sft"][100], *RUN_FLAGS, "--output_dir", tmp_path / "r", "--db", text,
        says="not a results index")
    assert not (tmp_path / "r").exists()


def test_no_index_and_light_imports(lineage, cli, tmp_path):
    code, _, err = cli("run", "--model", lineage["sft"][100], *RUN_FLAGS, "--output_dir", tmp_path / "r", "--no_index")
    assert code == 0, err
    assert (tmp_path / "r" / "results.json").exists() and not (tmp_path / "aimed_index.sqlite").exists()
    probe = ("import sys; import aimed.leaderboards.query, aimed.leaderboards.table, "
             "aimed.leaderboards.leaderboard_cmd, aimed.leaderboards.sample_index; "
             "bad = [m for m in ('torch', 'transformers', 'pandas', 'numpy') if m in sys.modules]; "
             "assert not bad, bad")
    subprocess.run([sys.executable, "-c", probe], check=True)
