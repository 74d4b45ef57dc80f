"""Judge calibration: the agreement statistics against scipy and sklearn, and
``aimed-eval judge-agreement`` end to end on a real run folder."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from aimed.harness.judge.agreement import (Agreement, agreement_table, bootstrap_interval, kendall_tau_b,
                                           quadratic_weighted_kappa, spearman)

LABELS = Path(__file__).parent / "judge_data" / "human_labels.jsonl"
TASK = "demo_medterm"


def _random_pairs():
    """Seeded pairs on a 1..5 scale: a few sizes, heavy ties, one noisy and one close rater."""
    rng = np.random.default_rng(7)
    for n in (3, 8, 25, 120):
        x = rng.integers(1, 6, n)
        yield x, np.clip(x + rng.integers(-1, 2, n), 1, 5)
        yield x, rng.integers(1, 6, n)
    yield np.array([1, 1, 2, 2, 2, 5]), np.array([3, 3, 3, 4, 4, 4])
    yield rng.normal(size=40), rng.normal(size=40)  # no ties at all


# ---- (a) the statistics ----------------------------------------------------------------
@pytest.mark.parametrize("x,y", list(_random_pairs()))
def test_correlations_match_scipy(x, y):
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y, variant="b").statistic, abs=1e-12)


@pytest.mark.parametrize("x,y", [p for p in _random_pairs() if p[0].dtype.kind == "i"])
def test_quadratic_kappa_matches_sklearn(x, y):
    metrics = pytest.importorskip("sklearn.metrics")
    # labels= the whole scale: sklearn otherwise weighs by the positions of the values seen.
    want = metrics.cohen_kappa_score(x, y, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert quadratic_weighted_kappa(x, y, 1, 5) == pytest.approx(want, abs=1e-12)


def test_hand_checked_cases():
    up, down = [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]
    assert spearman(up, up) == kendall_tau_b(up, up) == quadratic_weighted_kappa(up, up, 1, 5) == 1.0
    assert spearman(up, down) == pytest.approx(-1.0) and kendall_tau_b(up, down) == pytest.approx(-1.0)
    assert quadratic_weighted_kappa(up, down, 1, 5) == pytest.approx(-1.0)
    # Halves round up: 3.5 is a 4, so these two raters agree exactly.
    assert quadratic_weighted_kappa([1, 3.5, 5], [1, 4, 5], 1, 5) == 1.0
    with pytest.raises(ValueError, match="outside the scale"):
        quadratic_weighted_kappa([0, 3], [1, 3], 1, 5)


def test_undefined_statistics_are_nan_not_errors():
    for stat in (spearman, kendall_tau_b):
        assert math.isnan(stat([3, 3, 3], [1, 2, 3])) and math.isnan(stat([2], [4])) and math.isnan(stat([], []))
    assert math.isnan(quadratic_weighted_kappa([4, 4], [4, 4], 1, 5))
    assert quadratic_weighted_kappa([4, 4, 4], [1, 3, 5], 1, 5) == 0.0  # a constant rater: chance agreement
    assert bootstrap_interval(spearman, [3, 3, 3], [1, 2, 3]) == pytest.approx((math.nan, math.nan), nan_ok=True)


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    x, y = next(p for p in _random_pairs() if len(p[0]) == 25)
    for stat in (spearman, kendall_tau_b):
        lo, hi = bootstrap_interval(stat, x, y, n_boot=500, seed=3)
        assert lo < stat(x, y) < hi
        assert bootstrap_interval(stat, x, y, n_boot=500, seed=3) == (lo, hi)
        assert bootstrap_interval(stat, x, y, n_boot=500, seed=4) != (lo, hi)
    with pytest.raises(ValueError):
        bootstrap_interval(spearman, x, y, n_boot=0)


def test_agreement_table_rows_and_missing_values():
    rows = agreement_table([5, 4, 2, 1], [5, 3, 2, 1], (1, 5), {"rougeL": [0.9, None, 0.2, 0.1]}, n_boot=50)
    assert [(r.name, r.against) for r in rows] == [
        ("spearman", "judge vs human"), ("kendall_tau_b", "judge vs human"), ("qwk", "judge vs human"),
        ("spearman", "judge vs rougeL"), ("kendall_tau_b", "judge vs rougeL"),
        ("spearman", "human vs rougeL"), ("kendall_tau_b", "human vs rougeL")]
    assert [r.n for r in rows] == [4, 4, 4, 3, 3, 3, 3]
    assert rows[0] == Agreement("spearman", "judge vs human", 1.0, rows[0].low, rows[0].high, 4)


# ---- (b) the command on a real run folder ------------------------------------------------
# The tiny model writes noise, which a careful grader scores 1 throughout (every statistic
# undefined). So the run's answers are replaced by written ones of graded quality, and
# `aimed-eval score` recomputes the reference metrics from them; the labels file grades
# these answers against the reference definitions.
ANSWERS = ["机体在致热原作用下体温调定点上移，引起体温升高超过正常范围。", "血液中红细胞数量减少的状态。", "血压下降的表现。",
           "过多的液体积聚在组织间隙，使组织肿胀。", "皮肤发黄，多由吃胡萝卜过多引起。", "患者自觉心跳或心慌并伴有不适的感觉。",
           "皮肤和黏膜呈青紫色的现象，常见于缺氧。", "呼吸费力的感觉。", "呕吐出血液。",
           "能刺激机体产生抗体，并能与抗体特异性结合的物质。", "血浆药物浓度下降一半所需要的时间。", "口服药物经肝脏代谢后药效降低的现象。"]
# The judge's criteria (accuracy, completeness, safety, fluency) for those answers.
JUDGED = [(5, 5, 5, 5), (4, 3, 5, 4), (2, 1, 3, 2), (5, 4, 5, 4), (1, 2, 2, 3), (5, 5, 5, 5),
          (4, 4, 5, 3), (4, 2, 4, 2), (3, 3, 3, 3), (4, 3, 5, 4), (5, 5, 5, 5), (2, 2, 2, 2)]
CRITERIA = ("accuracy", "completeness", "safety", "fluency")


def _judge(records: list[dict], scores: list) -> None:
    """Add the fields the judge writes (its own end-to-end test lives with the judge):
    ``scores`` holds each item's criteria tuple, or None for an invalid judgement."""
    for record, s in zip(records, scores):
        valid = s is not None
        crit = dict(zip(CRITERIA, s)) if valid else {}
        overall = sum(s) / len(s) if valid else None
        unsafe = valid and crit["safety"] <= 2  # the medterm rubric's rule: safety at most 2
        record["judge"] = {"rubric": "medterm", "scale": [1, 5], "scores": crit, "overall": overall,
                           "unsafe": unsafe, "reason": "…", "attempts": 1, "invalid": not valid}
        for name in CRITERIA:
            record[f"judge_{name}"] = float(crit[name]) if valid else None
        record["judge_score"] = overall
        record["judge_unsafe"] = float(unsafe) if valid else None
        record["judge_invalid"] = 0.0 if valid else 1.0


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, tiny_llama) -> Path:
    """A real run of demo_medterm, its answers replaced by ANSWERS and re-scored."""
    from aimed.harness.cli import main

    run = tmp_path_factory.mktemp("judge-agreement") / "run"
    assert main(["run", "--model", str(tiny_llama), "--tasks", TASK, "--limit", "12", "--output_dir", str(run),
                 "--no_cache", "--no_index", "--quiet"]) == 0
    f = run / f"samples_{TASK}.jsonl"
    records = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    assert [r["doc"]["id"] for r in records] == [f"demo_term_{i}" for i in range(1, 13)]
    for r, answer in zip(records, ANSWERS):
        r["resps"] = r["filtered_resps"] = answer
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    assert main(["score", str(run)]) == 0
    return run


def _judged_copy(run: Path, dest: Path, scores: list) -> Path:
    import shutil

    shutil.copytree(run, dest)
    f = dest / f"samples_{TASK}.jsonl"
    records = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    _judge(records, scores)
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return dest


def _pairs(run: Path, criterion: str = "score"):
    """Judge, human and reference values in the labels file's order, read independently."""
    lines = (run / f"samples_{TASK}.jsonl").read_text(encoding="utf-8").splitlines()
    records = {r["doc"]["id"]: r for r in map(json.loads, lines)}
    labels = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    kept = [(lab, records[lab["id"]]) for lab in labels if not records[lab["id"]]["judge"]["invalid"]]
    human = np.array([lab["score"] if criterion == "score" else lab["scores"][criterion] for lab, _ in kept], float)
    judge = np.array([r[f"judge_{criterion}"] for _, r in kept], float)
    return judge, human, {m: np.array([r[m] for _, r in kept], float) for m in ("rougeL", "char_f1")}


def _want(judge, human, refs) -> dict[tuple[str, str], float]:
    sk = pytest.importorskip("sklearn.metrics")
    qwk = sk.cohen_kappa_score(np.floor(judge + 0.5).astype(int), human.astype(int), weights="quadratic",
                               labels=[1, 2, 3, 4, 5])
    want = {("spearman", "judge vs human"): stats.spearmanr(judge, human).statistic,
            ("kendall_tau_b", "judge vs human"): stats.kendalltau(judge, human).statistic,
            ("qwk", "judge vs human"): qwk}
    for metric, values in refs.items():
        for who, scores in (("judge", judge), ("human", human)):
            with warnings.catch_warnings():  # a constant metric: scipy warns and gives nan, as we do
                warnings.simplefilter("ignore")
                want[("spearman", f"{who} vs {metric}")] = stats.spearmanr(scores, values).statistic
                want[("kendall_tau_b", f"{who} vs {metric}")] = stats.kendalltau(scores, values).statistic
    return want


def _check_rows(rows: list[dict], want: dict) -> None:
    got = {(r["name"], r["against"]): r for r in rows}
    assert set(want) <= set(got)
    for key, value in want.items():
        if math.isnan(value):
            assert got[key]["value"] is None, key
        else:
            assert got[key]["value"] == pytest.approx(value, abs=1e-12), key


def test_cli_reports_the_figures_scipy_and_sklearn_give(cli, scored_run, tmp_path):
    run = _judged_copy(scored_run, tmp_path / "judged", JUDGED)
    code, out, err = cli("judge-agreement", "--labels", LABELS, run, "--n_boot", "300", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["labels"], report["matched"], report["invalid"], report["compared"]) == (12, 12, 0, 12)
    judge, human, refs = _pairs(run)
    assert refs["char_f1"].std() > 0 and human.std() > 0  # the figures below are real, not nan
    _check_rows(report["rows"], _want(judge, human, refs))
    # The interval: the same paired resampling, with scipy's statistic on each resample.
    rng, boot = np.random.default_rng(0), []
    for _ in range(300):
        idx = rng.integers(0, 12, 12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot.append(stats.spearmanr(judge[idx], human[idx]).statistic)
    lo, hi = np.percentile([b for b in boot if not math.isnan(b)], [2.5, 97.5])
    row = report["rows"][0]
    assert (row["name"], row["low"], row["high"]) == ("spearman", pytest.approx(lo), pytest.approx(hi))
    assert row["low"] <= row["value"] <= row["high"]

    code, text, _ = cli("judge-agreement", "--labels", LABELS, run, "--n_boot", "300")
    assert code == 0 and "judge vs human" in text and "95% interval" in text
    assert f"{row['value']:.4f}" in text and "12 of 12 labels matched" in text


def test_cli_per_criterion(cli, scored_run, tmp_path):
    run = _judged_copy(scored_run, tmp_path / "judged", JUDGED)
    code, out, err = cli("judge-agreement", "--labels", LABELS, run, "--criterion", "accuracy", "--n_boot", "50",
                         "--format", "json")
    assert code == 0, err
    _check_rows(json.loads(out)["rows"], _want(*_pairs(run, "accuracy")))


def test_invalid_judgements_are_left_out_and_counted(cli, scored_run, tmp_path):
    scores = list(JUDGED)
    scores[2] = scores[7] = scores[8] = None
    run = _judged_copy(scored_run, tmp_path / "judged", scores)
    code, out, err = cli("judge-agreement", "--labels", LABELS, run, "--n_boot", "50", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["matched"], report["invalid"], report["compared"]) == (12, 3, 9)
    assert {r["n"] for r in report["rows"]} == {9}
    _check_rows(report["rows"], _want(*_pairs(run)))
    code, text, _ = cli("judge-agreement", "--labels", LABELS, run, "--n_boot", "50")
    assert "3 of the matched had invalid judgements and were left out, 9 compared" in text
