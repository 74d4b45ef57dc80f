"""compare_runs on small hand-made run folders (exact numbers), and the compare command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as sps

from aimed.harness.compare import compare_runs, score_weights
from aimed.harness.errors import UserError

CATS = ["内科", "外科"]


def write_run(path: Path, tasks: dict, groups: dict | None = None, data_hash: str = "d1", version: int = 1,
              run_id: str | None = None) -> Path:
    """A run folder in the layout `aimed-eval run` writes. ``tasks``: name -> (metrics,
    items); an item is (id, {metric: value}, output)."""
    path.mkdir(parents=True)
    groups = groups or {}
    results, hib, aimed_tasks = {}, {}, {}
    for name, (metrics, items) in tasks.items():
        block = {"alias": name}
        for m in metrics:
            vals = [it[1][m] for it in items if it[1].get(m) is not None]
            block[f"{m},none"] = sum(vals) / len(vals) if vals and not isinstance(vals[0], list) else 0.0
            block[f"{m}_stderr,none"] = 0.0
        results[name] = block
        hib[name] = {m: True for m in metrics}
        aimed_tasks[name] = {"mode": "loglikelihood", "version": version, "spec_hash": "s1", "data_hash": data_hash}
        with (path / f"samples_{name}.jsonl").open("w", encoding="utf-8") as f:
            for i, (item_id, scores, output) in enumerate(items):
                doc = {"id": item_id, "question": f"问题{item_id}", "options": {"A": "甲", "B": "乙"},
                       "answer": ["A"], "target": "", "categories": {"科室": CATS[i % 2], "难度": str(i % 3)}}
                f.write(json.dumps({"doc_id": i, "doc": doc, "target": "A", "filtered_resps": output,
                                    **scores}, ensure_ascii=False) + "\n")
    for g in groups:
        results[g] = {"alias": g, "score,none": 0.0}
        hib[g] = {"score": True}
    results_json = {
        "results": results, "groups": {g: results[g] for g in groups},
        "group_subtasks": {**groups, **{t: [] for t in tasks}},
        "configs": {t: {"task": t, "metrics": m} for t, (m, _) in tasks.items()},
        "versions": {t: version for t in tasks}, "higher_is_better": hib,
        "aimed": {"run_id": run_id or path.name, "model": {"folder": f"/ckpt/{path.name}",
                                                            "fingerprint": f"fp-{path.name}"},
                  "tasks": aimed_tasks}}
    (path / "results.json").write_text(json.dumps(results_json, ensure_ascii=False), encoding="utf-8")
    return path


A_ACC = [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
B_ACC = [1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 1]
A_F1 = [0.2, 0.5, 0.9, 0.4, 0.7, 0.3]
B_F1 = [0.3, 0.5, 0.6, 0.0, 0.7, 0.25]


def _mcq(acc):
    return (["acc"], [(f"q{i}", {"acc": float(v)}, ["A"] if v else ["B"]) for i, v in enumerate(acc)])


def _gen(f1):
    return (["char_f1"], [(f"g{i}", {"char_f1": v}, f"答{i}-{v}") for i, v in enumerate(f1)])


@pytest.fixture
def two_runs(tmp_path):
    groups = {"both": ["mcq", "gen"]}
    a = write_run(tmp_path / "a", {"mcq": _mcq(A_ACC), "gen": _gen(A_F1)}, groups)
    b = write_run(tmp_path / "b", {"mcq": _mcq(B_ACC), "gen": _gen(B_F1)}, groups)
    return a, b


def test_metric_rows_exact(two_runs):
    c = compare_runs(*two_runs, n_boot=1000, seed=0)
    acc = c.row("mcq", "acc")
    assert (acc.a, acc.b, acc.n) == (pytest.approx(0.8), pytest.approx(0.55), 20)
    assert acc.delta == pytest.approx(-0.25)
    a_only = sum(1 for x, y in zip(A_ACC, B_ACC) if x and not y)
    b_only = sum(1 for x, y in zip(A_ACC, B_ACC) if y and not x)
    assert (a_only, b_only) == (7, 2)
    assert acc.test == "mcnemar"
    assert acc.p_value == pytest.approx(sps.binomtest(a_only, a_only + b_only, 0.5).pvalue)  # 92/512
    assert acc.ci_low < acc.delta < acc.ci_high and acc.significant is False
    f1 = c.row("gen", "char_f1")
    assert f1.delta == pytest.approx((sum(B_F1) - sum(A_F1)) / 6) and f1.test == "permutation"
    # 5 items differ: the exact test over 2^5 sign patterns
    exact = sps.permutation_test(([x for x in A_F1], [y for y in B_F1]),
                                 lambda p, q, axis=-1: (q - p).mean(axis), permutation_type="samples",
                                 vectorized=True, n_resamples=10**4).pvalue
    assert f1.p_value == pytest.approx(exact)


def test_group_and_suite_rows(two_runs):
    c = compare_runs(*two_runs, n_boot=500)
    both = c.row("both", "score")
    assert both.kind == "group"
    assert both.a == pytest.approx((0.8 + sum(A_F1) / 6) / 2)
    assert both.delta == pytest.approx((-0.25 + (sum(B_F1) - sum(A_F1)) / 6) / 2)
    assert both.ci_low < both.delta < both.ci_high
    suite = c.row("suite", "score")
    assert suite.kind == "suite" and suite.delta == pytest.approx(both.delta)
    assert score_weights("g", {"g": ["x", "h"], "h": ["y", "z"]}) == {"x": 0.5, "y": 0.25, "z": 0.25}


def test_categories_and_flips(two_runs):
    d = compare_runs(*two_runs, n_boot=200).to_dict()
    cell = next(r for r in d["categories"] if r["task"] == "mcq" and r["column"] == "科室" and r["category"] == "内科")
    even_a, even_b = A_ACC[0::2], B_ACC[0::2]
    assert cell["a"] == pytest.approx(sum(even_a) / 10) and cell["b"] == pytest.approx(sum(even_b) / 10)
    assert cell["delta"] == pytest.approx((sum(even_b) - sum(even_a)) / 10) and cell["n_a"] == 10
    assert {r["column"] for r in d["categories"]} == {"科室", "难度"}
    flips = [f for f in d["flips"] if f["task"] == "mcq"]
    assert [f["id"] for f in flips] == [f"q{i}" for i in range(20) if A_ACC[i] != B_ACC[i]]
    first = flips[0]
    assert (first["a_output"], first["b_output"], first["a_score"], first["b_score"]) == ("A", "B", 1.0, 0.0)
    gen = [f for f in d["flips"] if f["task"] == "gen"]  # continuous: largest change first
    assert [f["id"] for f in gen] == ["g3", "g2", "g0", "g5"] and gen[0]["a_output"] == "答3-0.4"
    assert d["main_metrics"] == {"mcq": "acc", "gen": "char_f1"}
    assert set(d["run_a"]) == {"run_id", "run_dir", "model", "fingerprint"} and d["run_b"]["fingerprint"] == "fp-b"
    json.dumps(d)  # valid JSON


def test_pairs_by_item_id_over_common_items(tmp_path):
    """B scored the items in another order and only 15 of them (--limit): pairs by id."""
    a = write_run(tmp_path / "a", {"mcq": _mcq(A_ACC)})
    items = _mcq(B_ACC)[1]
    b = write_run(tmp_path / "b", {"mcq": (["acc"], list(reversed(items[:15])))})
    c = compare_runs(a, b, n_boot=200)
    row = c.row("mcq", "acc")
    assert row.n == 15
    assert row.a == pytest.approx(sum(A_ACC[:15]) / 15) and row.b == pytest.approx(sum(B_ACC[:15]) / 15)
    assert any("15 items scored by both runs" in n for n in c.notes)


def test_corpus_metric_uses_its_aggregate(tmp_path):
    """bleu4 items carry sufficient statistics: compared through corpus BLEU, not a mean."""
    from aimed.harness.plugins import load_plugins
    from aimed.harness.scoring.metrics import METRICS

    load_plugins()
    stats_a = [[5, 3, 2, 1, 8, 7, 6, 5, 8, 9], [4, 2, 1, 0, 6, 5, 4, 3, 6, 6]]
    stats_b = [[7, 5, 4, 3, 8, 7, 6, 5, 8, 9], [5, 3, 2, 1, 6, 5, 4, 3, 6, 6]]
    a = write_run(tmp_path / "a", {"gen": (["bleu4"], [(f"g{i}", {"bleu4": s}, "x") for i, s in enumerate(stats_a)])})
    b = write_run(tmp_path / "b", {"gen": (["bleu4"], [(f"g{i}", {"bleu4": s}, "y") for i, s in enumerate(stats_b)])})
    row = compare_runs(a, b, n_boot=200).row("gen", "bleu4")
    corpus = METRICS.get("bleu4").aggregate
    assert row.a == pytest.approx(corpus(stats_a)) and row.b == pytest.approx(corpus(stats_b))
    assert row.delta > 0 and row.test == "permutation"


def test_refuses_other_data_or_version(tmp_path):
    a = write_run(tmp_path / "a", {"mcq": _mcq(A_ACC)})
    b = write_run(tmp_path / "b", {"mcq": _mcq(B_ACC)}, data_hash="d2")
    with pytest.raises(UserError, match=r"^mcq: the runs differ in data_hash \(A: d1, B: d2\)"):
        compare_runs(a, b)
    v = write_run(tmp_path / "v", {"mcq": _mcq(B_ACC)}, version=2)
    with pytest.raises(UserError, match=r"^mcq: the runs differ in task version \(A: 1, B: 2\)"):
        compare_runs(a, v)
    other = write_run(tmp_path / "o", {"gen": _gen(B_F1)})
    with pytest.raises(UserError, match="share no task"):
        compare_runs(a, other)


def test_bad_run_folders(tmp_path):
    a = write_run(tmp_path / "a", {"mcq": _mcq(A_ACC)})
    with pytest.raises(UserError, match="no such run folder"):
        compare_runs(a, tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results.json"):
        compare_runs(a, tmp_path / "empty")
    bad = write_run(tmp_path / "bad", {"mcq": _mcq(B_ACC)})
    (bad / "results.json").write_text('{"results": {', encoding="utf-8")
    with pytest.raises(UserError, match=r"results.json: not valid JSON"):
        compare_runs(a, bad)
    nosamples = write_run(tmp_path / "ns", {"mcq": _mcq(B_ACC)})
    (nosamples / "samples_mcq.jsonl").unlink()
    with pytest.raises(UserError, match=r"samples_mcq.jsonl: missing"):
        compare_runs(a, nosamples)
    broken = write_run(tmp_path / "br", {"mcq": _mcq(B_ACC)})
    with (broken / "samples_mcq.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(UserError, match=r"samples_mcq.jsonl:21: not a JSON object"):
        compare_runs(a, broken)


def test_compare_command_formats(two_runs, cli, tmp_path):
    a, b = two_runs
    code, out, err = cli("compare", a, b, "--n_boot", "300", "--flips", "2")
    assert code == 0 and err == ""
    line = next(x for x in out.splitlines() if x.startswith("mcq ") and " acc " in x)
    assert "0.8000" in line and "0.5500" in line and "-0.2500" in line and "0.1797" in line and "mcnemar" in line
    assert "Flipped items (main metric): mcq: 9, gen: 4" in out
    assert "Per category" in out and "内科" in out
    code, out, _ = cli("compare", a, b, "--format", "markdown", "--n_boot", "300")
    assert code == 0 and "| mcq | acc | 0.8000 | 0.5500 | -0.2500 |" in out
    target = tmp_path / "cmp.json"
    code, out, _ = cli("compare", a, b, "--format", "json", "--out", target)
    assert code == 0 and f"wrote {target}" in out
    d = json.loads(target.read_text(encoding="utf-8"))
    assert d["metrics"][0]["task"] == "mcq" and len(d["flips"]) == 13


def test_compare_command_bad_input_one_line(two_runs, cli, tmp_path):
    a, _ = two_runs
    for argv in [(a, tmp_path / "nope"), (a, a, "--out", tmp_path / "no" / "dir.json"), (a, a, "--n_boot", "0")]:
        code, out, err = cli("compare", *argv)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_compare_imports_no_torch(two_runs):
    a, b = two_runs
    code = ("import sys; from aimed.harness.compare import compare_runs; import aimed.harness.gate, "
            "aimed.harness.compare_format; "
            f"compare_runs({str(a)!r}, {str(b)!r}, n_boot=50); assert 'torch' not in sys.modules, 'torch'")
    subprocess.run([sys.executable, "-c", code], check=True)


def write_lm_eval_run(path: Path, acc: list) -> Path:
    """An lm-evaluation-harness output folder (--output_path with --log_samples):
    results_<date>.json and samples_<task>_<date>.jsonl, docs without an id."""
    path.mkdir(parents=True)
    stamp = "2024-05-13T12-34-56.123456"
    results = {"results": {"mcq": {"alias": "mcq", "acc,none": sum(acc) / len(acc), "acc_stderr,none": 0.1}},
               "group_subtasks": {"mcq": []},
               "configs": {"mcq": {"task": "mcq", "metric_list": [{"metric": "acc"}]}},
               "versions": {"mcq": 1.0}, "higher_is_better": {"mcq": {"acc": True}},
               "config": {"model": "hf", "model_args": f"pretrained=/ckpt/{path.name}"}}
    (path / f"results_{stamp}.json").write_text(json.dumps(results), encoding="utf-8")
    with (path / f"samples_mcq_{stamp}.jsonl").open("w", encoding="utf-8") as f:
        for i, v in enumerate(acc):
            f.write(json.dumps({"doc_id": i, "doc": {"question": f"问题{i}", "answer": 0}, "target": 0,
                                "filtered_resps": [["-0.5", "True"], ["-1.5", "False"]], "acc": float(v)},
                               ensure_ascii=False) + "\n")
    return path


def test_lm_eval_output_folders_compare_by_doc_id(tmp_path):
    a = write_lm_eval_run(tmp_path / "lm_a", A_ACC)
    b = write_lm_eval_run(tmp_path / "lm_b", B_ACC)
    c = compare_runs(a, b, n_boot=200)
    row = c.row("mcq", "acc")
    assert (row.n, row.delta, row.test) == (20, pytest.approx(-0.25), "mcnemar")
    assert c.run_a["model"] == "pretrained=/ckpt/lm_a" and c.main_metrics == {"mcq": "acc"}
    assert any("data hash not recorded" in n for n in c.notes)
    # an aimed-eval run against an lm-eval run of the same task: items paired by position
    ours = write_run(tmp_path / "ours", {"mcq": _mcq(B_ACC)})
    assert compare_runs(a, ours, n_boot=200).row("mcq", "acc").delta == pytest.approx(-0.25)
