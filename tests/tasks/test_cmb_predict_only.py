"""CMB-Exam's test split (answers kept by CMB) as the predict_only task cmb_test: its
fixture, in CMB's test-file format, loads without answers; a run predicts it, scores
nothing, and writes the file CMB's leaderboard takes; compare, gate and the leaderboard
show no number for it; a normal task still refuses items without answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import aimed.tasks  # noqa: F401  (registers the loaders and the cmb submission format)
from aimed.harness.errors import UserError
from aimed.harness.scoring.choose import choose
from aimed.harness.taskregistry import UnansweredItem, resolve_tasks
from aimed.harness.taskspec import parse_spec

FIXTURES = Path(__file__).parent / "fixtures"
CMB_TEST = FIXTURES / "cmb" / "CMB-test-choice-question-merge.json"  # CMB's name: ids its own integers
CMB_VAL = FIXTURES / "cmb" / "CMB-val-merge.json"
MULTI_IDS = {"2", "4"}  # the fixture's two 多项选择题


def spec_file(tmp_path: Path, data: Path, extra: str = "predict_only: true\nsubmission: cmb\n") -> Path:
    f = tmp_path / "t.yaml"
    f.write_text(f"task: t\nkind: multiple_choice\ndata: {{loader: cmb, path: {data}}}\n{extra}", encoding="utf-8")
    return f


def write_json(path: Path, items: list) -> Path:
    path.write_text(json.dumps(items, ensure_ascii=False, indent=4), encoding="utf-8")
    return path


def test_cmb_test_spec():
    (task,) = resolve_tasks("cmb_test")
    spec = task.spec
    assert spec.data.path == "$AIMED_DATA/cmb/CMB-Exam/CMB-test/CMB-test-choice-question-merge.json"
    assert (spec.predict_only, spec.submission, spec.metrics, spec.main_metric) == (True, "cmb", [], None)


def test_fixture_loads_without_answers_and_keeps_the_question_type(tmp_path):
    (task,) = resolve_tasks(str(spec_file(tmp_path, CMB_TEST)))
    items = task.samples()
    assert [s.id for s in items] == ["1", "2", "3", "4", "5", "6"]
    assert all(isinstance(s, UnansweredItem) and s.answer == () for s in items)
    assert {s.id for s in items if s.is_multi_answer} == MULTI_IDS
    assert [s.where for s in items] == [f"CMB-test-choice-question-merge.json:{n}" for n in (2, 17, 32, 47, 62, 77)]
    assert items[2].options == {"A": "20～40滴", "B": "40～60滴", "C": "60～80滴", "D": "80～100滴"}  # "E": "" left out
    assert items[0].categories == {"exam_type": "医师考试", "exam_class": "规培结业", "exam_subject": "临床病理科"}
    assert items[1].to_dict()["multi_answer"] is True and "answer" in items[1].to_dict()


def test_answered_items_of_a_predict_only_split_are_fine(tmp_path):
    items = json.loads(CMB_TEST.read_text(encoding="utf-8"))
    items[0]["answer"] = "D"
    f = write_json(tmp_path / "mixed.json", items)
    samples = resolve_tasks(str(spec_file(tmp_path, f)))[0].samples()
    assert [s.answer for s in samples] == [("D",)] + [()] * 5
    assert type(samples[0]).__name__ == "Sample"


def test_a_normal_task_still_refuses_items_without_answers(tmp_path):
    (task,) = resolve_tasks(str(spec_file(tmp_path, CMB_TEST, "metrics: [acc]\n")))
    with pytest.raises(UserError) as exc:
        task.samples()
    assert str(exc.value) == (f"{CMB_TEST}: no item has an answer, as in a test split whose answers the publisher "
                              "keeps; set predict_only: true in the spec of task 't' to predict them without "
                              "scoring (as cmb_test does), or point it at an answered file")
    items = json.loads(CMB_TEST.read_text(encoding="utf-8"))
    items[0]["answer"] = "D"
    f = write_json(tmp_path / "mixed.json", items)
    (task,) = resolve_tasks(str(spec_file(tmp_path, f, "metrics: [acc]\n")))
    with pytest.raises(UserError) as exc:
        task.samples()
    message = str(exc.value)
    assert message.startswith(f"{f}: 5 bad rows: line 18: item '2' has no answer letter; fill in the answer; ")
    assert "\n" not in message


def test_a_malformed_row_of_a_predict_only_file_is_one_line(tmp_path):
    items = json.loads(CMB_TEST.read_text(encoding="utf-8"))
    items[3]["question_type"] = "多选"
    f = write_json(tmp_path / "CMB-test-choice-question-merge.json", items)
    (task,) = resolve_tasks(str(spec_file(tmp_path, f)))
    with pytest.raises(UserError) as exc:
        task.samples()
    assert str(exc.value) == (f"{f}:47: item [3], field 'question_type': '多选' is neither 单项选择题 nor 多项选择题, "
                              "and the item has no answer to tell how many it takes; fix the field (or skip it: "
                              "`on_bad_row: skip` in the spec, or --skip_bad_rows)")


@pytest.mark.parametrize("extra, expected", [
    ("predict_only: true\nmetrics: [acc]\n", "predict_only: the task's answers are kept by its publisher, so "
                                             "nothing is scored; remove metrics"),
    ("predict_only: true\ncircular: true\nprotocol: cmexam\n", "remove protocol, circular"),
    ("", "field 'metrics': list the metrics to report (e.g. metrics: [acc]), or set predict_only: true"),
    ("metrics: [acc]\nsubmission: cmb\n", "submission: is written for a predict_only task"),
])
def test_spec_checks(tmp_path, extra, expected):
    with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_spec(spec_file(tmp_path, CMB_TEST, extra))


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """AIMED_DATA laid out as CMB's zip unpacks, with the fixtures in their places."""
    root = tmp_path / "data" / "cmb" / "CMB-Exam"
    (root / "CMB-test").mkdir(parents=True)
    (root / "CMB-val").mkdir()
    shutil.copy(CMB_TEST, root / "CMB-test" / CMB_TEST.name)
    shutil.copy(CMB_VAL, root / "CMB-val" / CMB_VAL.name)
    monkeypatch.setenv("AIMED_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def records_of(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_run_predicts_writes_the_submission_and_scores_nothing(tiny_llama, cli, tmp_path, data):
    group = tmp_path / "cmb.yaml"
    group.write_text("group: cmb\ntasks: [cmb_val, cmb_test]\n", encoding="utf-8")
    out = tmp_path / "r"
    code, stdout, err = cli("run", "--model", tiny_llama, "--tasks", group, "--output_dir", out, "--no_cache",
                            "--no_index", "--quiet", "--skip_bad_rows")
    assert code == 0, err
    submission = out / "submission_cmb_test.json"
    assert f"submission for cmb_test (cmb format, 6 items): {submission}" in stdout
    assert "cmb_test  (predict-only)  —" in stdout

    # CMB's format: one {"id", "model_answer"} an item, the ids CMB gave (integers), in its order
    rows = json.loads(submission.read_text(encoding="utf-8"))
    records = records_of(out, "cmb_test")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert set(rows[0]) == {"id", "model_answer"}
    assert [r["model_answer"] for r in rows] == ["".join(sorted(r["filtered_resps"])) for r in records]
    # the model's choice, as the rule for its question type makes it: several letters may be
    # chosen for a 多项选择题 (scoring/choose.py), exactly one for a 单项选择题
    for r in records:
        multi = r["doc"]["id"] in MULTI_IDS
        assert r["doc"]["multi_answer"] is multi and r["doc"]["answer"] == [] and r["target"] == ""
        scores = {k: resp[0] for k, resp in zip(r["doc"]["options"], r["resps"])}
        assert tuple(r["filtered_resps"]) == choose(scores, multi)
        assert not any(k in r for k in ("acc", "set_f1", "no_answer"))  # no per-item metric
    assert [len(r["model_answer"]) for r in rows if str(r["id"]) not in MULTI_IDS] == [1, 1, 1, 1]
    assert max(len(r["model_answer"]) for r in rows if str(r["id"]) in MULTI_IDS) > 1

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["results"]["cmb_test"] == {"alias": "cmb_test"}  # no metric, no made-up 0
    assert results["aimed"]["predict_only"] == {
        "cmb_test": {"items": 6, "submission": "submission_cmb_test.json", "format": "cmb"}}
    assert results["n-samples"]["cmb_test"] == {"original": 6, "effective": 6}
    assert results["higher_is_better"]["cmb_test"] == {} and results["aimed"]["scored"]["cmb_test"] == {}
    assert results["configs"]["cmb_test"]["predict_only"] is True
    assert "cmb_test" not in results["aimed"]["categories"]
    # the group averages cmb_val alone
    val = results["results"]["cmb_val"]
    assert results["results"]["cmb"]["acc,none"] == val["acc,none"]
    assert results["results"]["cmb"]["score,none"] == val["acc,none"]


def test_compare_gate_and_leaderboard_show_no_number_for_it(tiny_llama, cli, tmp_path, data):
    db = tmp_path / "index.sqlite"
    runs = []
    for name, mode in (("a", "loglikelihood"), ("b", "cloze")):
        runs.append(tmp_path / name)
        code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmb_val,cmb_test", "--mode", mode,
                           "--output_dir", runs[-1], "--no_cache", "--db", db, "--quiet", "--skip_bad_rows")
        assert code == 0, err
    code, out, err = cli("compare", *runs, "--n_boot", "200")
    assert code == 0, err
    assert "cmb_val  acc" in out and not any(line.startswith("cmb_test ") for line in out.splitlines())
    code, out, err = cli("compare", *runs, "--n_boot", "200", "--format", "json")
    assert code == 0, err
    compared = json.loads(out)
    # the suite row is cmb_val's alone: the predict-only task has no main metric to average
    assert {row["task"] for row in compared["metrics"] + compared["categories"]} == {"cmb_val", "suite"}
    assert "cmb_test" not in compared["main_metrics"]
    code, out, err = cli("gate", "--candidate", runs[1], "--baseline", runs[0])
    assert code == 0, err
    assert "| cmb_val |" in out and "cmb_test" not in out
    code, out, err = cli("leaderboard", "--db", db)
    assert code == 0, err
    header = next(line for line in out.splitlines() if "cmb_test" in line)
    column = header.index("cmb_test")
    cells = [line[column:column + len("cmb_test")].strip() for line in out.splitlines()
             if line.startswith("unknown")]
    assert cells == ["—"]  # one row, the checkpoint both runs scored: no number in the column


def test_score_reads_the_predictions_as_the_run_made_them(tiny_llama, cli, tmp_path, data):
    out = tmp_path / "r"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmb_test", "--output_dir", out, "--no_cache",
                       "--no_index", "--quiet")
    assert code == 0, err
    samples, submission = out / "samples_cmb_test.jsonl", out / "submission_cmb_test.json"
    made = {f: f.read_bytes() for f in (samples, submission, out / "results.json")}
    submission.write_text("[]\n", encoding="utf-8")  # a damaged submission: score writes it again

    code, stdout, err = cli("score", out)
    assert code == 0, err
    assert "(0 predictions changed;" in stdout and "cmb_test  (predict-only)  —" in stdout
    assert samples.read_bytes() == made[samples] and submission.read_bytes() == made[submission]
    records = records_of(out, "cmb_test")
    assert max(len(r["filtered_resps"]) for r in records if r["doc"]["id"] in MULTI_IDS) > 1
    assert all(len(r["filtered_resps"]) == 1 for r in records if r["doc"]["id"] not in MULTI_IDS)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    before = json.loads(made[out / "results.json"])
    assert results["results"]["cmb_test"] == {"alias": "cmb_test"}  # still no metric
    assert results["aimed"]["predict_only"] == before["aimed"]["predict_only"]
    assert results["aimed"]["scored"]["cmb_test"] == {} and results["higher_is_better"]["cmb_test"] == {}


def test_score_with_another_cloze_norm_rewrites_the_submission_from_the_new_predictions(
        tiny_llama, cli, tmp_path, data):
    out = tmp_path / "r"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmb_test", "--mode", "cloze", "--output_dir", out,
                       "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    code, _, err = cli("score", out, "--cloze_norm", "none")
    assert code == 0, err
    rows = json.loads((out / "submission_cmb_test.json").read_text(encoding="utf-8"))
    assert [r["model_answer"] for r in rows] == ["".join(sorted(r["filtered_resps"]))
                                                 for r in records_of(out, "cmb_test")]


def test_the_index_records_it_without_a_metric(tiny_llama, cli, tmp_path, data, index_db):
    from aimed.harness.index import PREDICT_ONLY, connect
    from aimed.leaderboards import query

    out = tmp_path / "r"
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", "cmb_val,cmb_test", "--output_dir", out, "--no_cache",
                       "--db", index_db, "--quiet", "--skip_bad_rows")
    assert code == 0, err
    db = connect(index_db)
    try:
        metas = {r[0]: r[1] for r in db.execute("SELECT task, main_metric FROM task_meta")}
        assert metas == {"cmb_val": "acc", "cmb_test": PREDICT_ONLY}
        assert not list(db.execute("SELECT metric FROM scores WHERE task = ?", ("cmb_test",)))
    finally:
        db.close()
    val_acc = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]["cmb_val"]["acc,none"]

    db = query.open_index(index_db)
    try:
        board = query.leaderboard(db)
        progression = query.progression(db)
    finally:
        db.close()
    assert board.metrics == {"cmb_val": "acc", "cmb_test": PREDICT_ONLY}
    (row,) = board.rows
    assert row.scores["cmb_test"] == (None, None, PREDICT_ONLY)
    assert row.average == pytest.approx(val_acc)  # cmb_val's alone: the predict-only column has no number
    assert {p["task"] for p in progression} == {"cmb_val", query.AVERAGE}

    # the table: no metric name under cmb_test, no number in its cell, and an average
    code, text, err = cli("leaderboard", "--db", index_db)
    assert code == 0, err
    names, metrics, _, cells = [line.split() for line in text.splitlines()[1:5]]
    assert names[3:6] == ["cmb_val", "cmb_test", "average"]
    assert metrics[:3] == ["acc", PREDICT_ONLY, "main"]
    assert cells[3:6] == [f"{val_acc:.4f}", "—", f"{val_acc:.4f}"]
    code, text, err = cli("leaderboard", "--db", index_db, "--format", "markdown")
    assert code == 0, err
    assert f"| cmb_test ({PREDICT_ONLY}) |" in text and "cmb_test (acc)" not in text
    report = tmp_path / "report.md"
    code, _, err = cli("report", "--db", index_db, "--out", report, "--format", "markdown")
    assert code == 0, err
    text = report.read_text(encoding="utf-8")
    assert f"cmb_test ({PREDICT_ONLY})" in text and "cmb_test (acc)" not in text
    assert "| cmb_test |" not in text  # no score rows, no progression points for it


def test_a_group_of_predict_only_tasks_alone_has_no_metric_in_the_index(tiny_llama, cli, tmp_path, data, index_db):
    from aimed.harness.index import PREDICT_ONLY, connect

    group = tmp_path / "unanswered.yaml"
    group.write_text("group: unanswered\ntasks: [cmb_test]\n", encoding="utf-8")
    code, _, err = cli("run", "--model", tiny_llama, "--tasks", group, "--output_dir", tmp_path / "r", "--no_cache",
                       "--db", index_db, "--quiet")
    assert code == 0, err
    db = connect(index_db)
    try:
        metas = {r[0]: (r[1], r[2]) for r in db.execute("SELECT task, main_metric, is_group FROM task_meta")}
    finally:
        db.close()
    assert metas == {"cmb_test": (PREDICT_ONLY, 0), "unanswered": (PREDICT_ONLY, 1)}
    code, out, err = cli("leaderboard", "--db", index_db)
    assert code == 0, err
    assert "(no checkpoint scored every task shown" in out  # nothing to average: no made-up number
