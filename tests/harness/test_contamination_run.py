"""``run --contamination_data``: each item's overlap in its record, every metric on the clean
subset too; ``compare``/``gate`` on the clean subset and ``max_contaminated``."""

import json
import shutil
from pathlib import Path

import pytest

CMEXAM_LIMIT = 40
PLANTED = (3, 9, 17, 22, 31)  # items of val.csv (0-based, within the first CMEXAM_LIMIT)


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def _records(run_dir: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def leaked_sft(data_dir, tmp_path_factory) -> tuple[Path, set[str]]:
    """The real SFT file with five CMExam val items written into its answers, as they
    circulate in exam-prep material: question and options inside a longer response."""
    from aimed.harness.taskregistry import resolve_tasks

    items = resolve_tasks(["cmexam"])[0].samples()
    out = tmp_path_factory.mktemp("leak") / "sft_leaked.jsonl"
    lines = (data_dir / "train" / "sft" / "medical_sft_1K_format.jsonl").read_text(encoding="utf-8").splitlines()
    for k, i in enumerate(PLANTED):
        s = items[i]
        options = "\n".join(f"{letter} {text}" for letter, text in s.options.items())
        text = f"例题：{s.question}\n{options}\n答案：{''.join(s.answer)}。解析见教材。"
        lines.insert(100 * k + 7, json.dumps({"conversations": [{"from": "human", "value": "给我出一道题"},
                                                                {"from": "gpt", "value": text}]}, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, {items[i].id for i in PLANTED}


def test_run_reports_clean_subset(cli, tiny_llama, leaked_sft, tmp_path):
    leak, planted = leaked_sft
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--model", tiny_llama, "--tasks", "cmexam", "--limit", CMEXAM_LIMIT,
                            "--contamination_data", leak, "--output_dir", out, "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    recs = _records(out, "cmexam")
    flagged = {r["doc"]["id"] for r in recs if r["contamination"]["flagged"]}
    assert flagged == planted
    assert all(r["contamination"]["share"] == 1.0 for r in recs if r["doc"]["id"] in planted)
    res = _results(out)
    block = res["results"]["cmexam"]
    clean = [r for r in recs if r["doc"]["id"] not in planted]
    assert block["contaminated,none"] == pytest.approx(len(planted) / CMEXAM_LIMIT)
    assert block["acc_clean,none"] == pytest.approx(sum(r["acc"] for r in clean) / len(clean))
    assert block["acc,none"] == pytest.approx(sum(r["acc"] for r in recs) / CMEXAM_LIMIT)  # unchanged
    assert res["aimed"]["scored"]["cmexam"]["acc_clean"] == CMEXAM_LIMIT - len(planted)
    assert res["higher_is_better"]["cmexam"]["contaminated"] is False
    summary = res["aimed"]["contamination"]
    from aimed.harness.contamination import DEFAULT_N

    assert summary["ngram"] == DEFAULT_N["char"] and summary["files"] == [str(leak)] and summary["flagged"]["cmexam"] == 5
    assert "acc_clean" in stdout and "contaminated" in stdout
    # re-scoring keeps the overlaps and gives the same numbers, without the model or the data
    again = tmp_path / "again"
    shutil.copytree(out, again)
    assert cli("score", again)[0] == 0
    assert _results(again)["results"]["cmexam"] == block


def test_gate_on_clean_subset_and_max_contaminated(cli, tiny_llama, tiny_qwen2, leaked_sft, tmp_path):
    leak, planted = leaked_sft
    base, cand = tmp_path / "base", tmp_path / "cand"
    common = ["--tasks", "cmexam", "--limit", CMEXAM_LIMIT, "--no_cache", "--no_index", "--quiet"]
    assert cli("run", "--model", tiny_llama, *common, "--output_dir", base)[0] == 0
    code, _, err = cli("run", "--model", tiny_qwen2, *common, "--contamination_data", leak, "--output_dir", cand)
    assert code == 0, err
    from aimed.harness.compare import compare_runs

    full = compare_runs(base, cand, n_boot=200)
    clean = compare_runs(base, cand, n_boot=200, only_clean=True)
    assert full.row("cmexam", "acc").n == CMEXAM_LIMIT
    assert clean.row("cmexam", "acc").n == CMEXAM_LIMIT - len(planted)
    a = {r["doc"]["id"]: r["acc"] for r in _records(base, "cmexam")}
    b = {r["doc"]["id"]: r["acc"] for r in _records(cand, "cmexam")}
    keep = [k for k in a if k not in planted]
    assert clean.row("cmexam", "acc").delta == pytest.approx(sum(b[k] - a[k] for k in keep) / len(keep))
    assert full.row("cmexam", "contaminated") is None  # the data's property, not the model's
    assert clean.contaminated == {"cmexam": (5, CMEXAM_LIMIT)}

    policy = tmp_path / "gates.yaml"
    policy.write_text("on: clean\nmax_contaminated: 4\nrules:\n  cmexam:\n    acc: {max_drop: 1.0}\n", encoding="utf-8")
    code, out, err = cli("gate", "--candidate", cand, "--baseline", base, "--policy", policy, "--json",
                         tmp_path / "v.json")
    assert code == 1, out + err
    verdict = json.loads((tmp_path / "v.json").read_text())
    fail = verdict["failures"][0]
    assert fail["metric"] == "contaminated_items" and fail["candidate"] == 5.0
    assert "5 of 40 eval items found in the training data (max_contaminated 4)" in out
    acc = next(c for c in verdict["checks"] if c["metric"] == "acc")
    assert acc["n"] == CMEXAM_LIMIT - len(planted) and acc["status"] == "pass"
    policy.write_text("on: clean\nmax_contaminated: 5\nrules:\n  cmexam:\n    acc: {max_drop: 1.0}\n", encoding="utf-8")
    assert cli("gate", "--candidate", cand, "--baseline", base, "--policy", policy)[0] == 0
    # a policy that asks about training data of runs never checked against any: one line, exit 2
    code, out, err = cli("gate", "--candidate", base, "--baseline", base, "--policy", policy)
    assert code == 2 and "no clean subset" in err and "--contamination_data" in err


def test_a_failed_run_leaves_no_folders_it_made(cli, tiny_llama, tmp_path, monkeypatch):
    """The folders a run would have created above its run folder (the default aimed_runs/,
    or --output_dir's missing parents) are taken back when it fails; a folder that was there
    before, or that holds anything, stays."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    for argv in (["--contamination_data", "nope.txt"],
                 ["--output_dir", "deep/er/run", "--contamination_data", "nope.txt"],
                 ["--output_dir", "mine/new/run", "--contamination_data", "nope.txt"]):
        code, _, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--no_cache", "--quiet", *argv)
        assert code == 2 and "nope.txt: not found" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"] and not any((tmp_path / "mine").iterdir())
