"""A tiny model scores the whole suite on the real data in ../shared/data."""

import json

import pytest

CATEGORY_COLUMNS = {"Disease Group", "Area of Competency", "Clinical Department", "Medical Discipline",
                    "Difficulty level"}


@pytest.fixture(scope="module")
def suite_run(tiny_llama, tmp_path_factory, data_dir):
    from aimed.harness.cli import main

    out = tmp_path_factory.mktemp("suite") / "run"
    assert main(["run", "--model", str(tiny_llama), "--tasks", "medqa,cmexam_test10", "--output_dir", str(out),
                 "--no_cache", "--quiet"]) == 0
    return out, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_every_item_scored(suite_run):
    _, res = suite_run
    n = {t: v["effective"] for t, v in res["n-samples"].items()}
    # val.csv has 6,811 rows; one has no answer ("nan") and is skipped with a warning.
    assert n["cmexam"] == res["n-samples"]["cmexam"]["original"] == 6810
    assert sum(v for t, v in n.items() if t.startswith("cmmlu_")) == 1815
    assert n["medterm"] == 273
    assert n["abstractqa_title"] == n["abstractqa_keywords"] == n["abstractqa_discipline"] == 106
    assert set(res["group_subtasks"]["medqa"]) == {"cmexam", "cmmlu_medical", "medterm", "abstractqa"}


def test_scores_are_those_of_a_random_model(suite_run):
    run_dir, res = suite_run
    r = res["results"]
    # A random tiny model picks near chance on 4-5 options, and well below perfect.
    assert 0.12 < r["cmexam"]["acc,none"] < 0.32
    assert 0.15 < r["cmmlu_medical"]["acc,none"] < 0.35
    assert 0.0 <= r["medterm"]["rougeL,none"] < 0.2
    recs = [json.loads(x) for x in (run_dir / "samples_cmexam.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(x["acc"] for x in recs) / len(recs) == pytest.approx(r["cmexam"]["acc,none"])
    multi = [x for x in recs if len(x["doc"]["answer"]) > 1]
    assert len(multi) == 210
    assert r["cmexam"]["set_f1,none"] == pytest.approx(sum(x["set_f1"] for x in multi) / len(multi))
    # the group is the size-weighted mean of its subjects
    subj = [t for t in r if t.startswith("cmmlu_") and t != "cmmlu_medical"]
    sizes = {t: res["n-samples"][t]["effective"] for t in subj}
    weighted = sum(r[t]["acc,none"] * sizes[t] for t in subj) / sum(sizes.values())
    assert r["cmmlu_medical"]["acc,none"] == pytest.approx(weighted)


def test_category_breakdowns_on_test_10(suite_run):
    _, res = suite_run
    cats = res["aimed"]["categories"]["cmexam_test10"]
    assert set(cats) == CATEGORY_COLUMNS
    for column, values in cats.items():
        assert sum(cell["n"] for cell in values.values()) == 9, column
        for cell in values.values():
            assert 0.0 <= cell["acc"] <= 1.0
