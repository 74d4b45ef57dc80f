"""The judge against a real, flaky HTTP endpoint on loopback (flaky_judge.py: every third
request answers 429 or 500, the first request of every fifth item hangs past the client's
timeout): no judgement is lost, no item is asked again once its judgement was delivered;
pairwise compare in both orders, with a position-biased judge; the generate-mode cascade."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import flaky_judge
from aimed.harness.judge.parse import read_pointwise
from aimed.harness.judge.records import answer_text, item_fields
from aimed.harness.judge.rubric import load_rubric

HERE = Path(__file__).parent


def _start(tmp: Path, *flags: str):
    """A flaky_judge.py server on a free port: (its URL, its process, its delivery log)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp / "delivered.jsonl"
    proc = subprocess.Popen([sys.executable, str(HERE / "flaky_judge.py"), str(port), "--log", str(log), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return f"http://127.0.0.1:{port}/v1", proc, log


@pytest.fixture
def flaky(tmp_path):
    url, proc, log = _start(tmp_path)
    yield url, log
    proc.terminate()  # stopped by its PID
    proc.wait(timeout=30)


def _config(path: Path, url: str, **extra) -> Path:
    keys = {"base_url": url, "concurrency": 4, "max_retries": 8, "timeout": 1.0, **extra}
    path.write_text("".join(f"{k}: {v}\n" for k, v in keys.items()), encoding="utf-8")
    return path


def _records(run: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


def _log(log: Path) -> list[dict]:
    return [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


def _delivered(log: Path) -> Counter:
    """Judgements delivered, by item."""
    return Counter(e["item"] for e in _log(log) if e["action"] == "ok")


def test_a_flaky_endpoint_loses_no_judgement_and_asks_nothing_twice(cli, tiny_llama, flaky, tmp_path):
    url, log = flaky
    config = _config(tmp_path / "judge.yaml", url)
    run, cache = tmp_path / "run", tmp_path / "cache"
    argv = ["run", "--model", tiny_llama, "--tasks", "medterm", "--limit", "20", "--judge", config,
            "--cache_dir", cache, "--output_dir", run, "--no_index", "--quiet"]
    code, out, err = cli(*argv)
    assert code == 0, err
    cost = json.loads((run / "results.json").read_text(encoding="utf-8"))["aimed"]["judge"]["tasks"]["medterm"]
    assert cost["asked"] == 20 and cost["cached"] == 0 and cost["invalid"] == 0
    faults = Counter(e["action"] for e in _log(log))
    assert faults["429"] and faults["500"] and faults["hang"] == 4  # the faults did happen
    delivered = _delivered(log)
    assert len(delivered) == 20 and set(delivered.values()) == {1}  # each item judged once, none lost
    # every judgement is the one the endpoint gave for that item's prompt
    rubric = load_rubric("medterm")
    for r in _records(run, "medterm"):
        said = read_pointwise(flaky_judge.judgement(rubric.render(item_fields(r, "医学名词解释"))), rubric)
        assert r["judge"]["scores"] == said.scores and r["judge_invalid"] == 0.0

    code, out, err = cli(*argv, "--overwrite")  # a rerun: all from the cache, nothing asked
    assert code == 0, err
    again = json.loads((run / "results.json").read_text(encoding="utf-8"))["aimed"]["judge"]["tasks"]["medterm"]
    assert again["asked"] == 0 and again["cached"] == 20
    assert _delivered(log) == delivered


def _pair_expectation(a: list[dict], b: list[dict]) -> dict:
    """What the position-biased endpoint's verdicts come to, worked out here from the answers."""
    counts = Counter()
    for ra, rb in zip(a, b):
        la, lb = len(answer_text(ra)), len(answer_text(rb))
        if abs(la - lb) <= flaky_judge.POSITION_BIAS_CHARS:
            counts["tie"] += 1  # each order picks the answer shown first: inconsistent, a tie
            counts["inconsistent"] += 1
        else:
            counts["B" if lb > la else "A"] += 1
    return counts


def test_pairwise_compare_judges_both_orders_and_counts_inconsistent_pairs(cli, tiny_llama, tmp_path):
    url, proc, log = _start(tmp_path, "--no_faults")
    try:
        for name, shots in (("a", "0"), ("b", "1")):
            code, out, err = cli("run", "--model", tiny_llama, "--tasks", "demo_medterm", "--num_fewshot", shots,
                                 "--output_dir", tmp_path / name, "--no_index", "--no_cache", "--quiet")
            assert code == 0, err
        cache = tmp_path / "cache"
        code, out, err = cli("compare", tmp_path / "a", tmp_path / "b", "--judge", url, "--cache_dir", cache,
                             "--format", "json", "--quiet")
        assert code == 0, err
        row = json.loads(out)["pairwise"][0]
        want = _pair_expectation(_records(tmp_path / "a", "demo_medterm"), _records(tmp_path / "b", "demo_medterm"))
        n = len(_records(tmp_path / "a", "demo_medterm"))
        assert (row["n"], row["b_wins"], row["a_wins"], row["ties"]) == (n, want["B"], want["A"], want["tie"])
        assert row["inconsistent"] == want["inconsistent"] and row["invalid"] == 0
        assert row["win_rate"] == pytest.approx((want["B"] + want["tie"] / 2) / n)
        assert row["ci_low"] <= row["win_rate"] <= row["ci_high"]
        assert row["consistency"] == pytest.approx(1 - want["inconsistent"] / n)
        assert len(_delivered(log)) == 2 * n  # both orders asked, once each

        # a run against itself: equal answers, which this judge settles by position alone
        code, out, err = cli("compare", tmp_path / "a", tmp_path / "a", "--judge", url, "--cache_dir", cache,
                             "--quiet")
        assert code == 0, err
        line = next(x for x in out.splitlines() if x.startswith("demo_medterm") and "inconsistent" in x)
        assert f"0/{n}/0" in line and f"0.000 ({n} inconsistent)" in line and "1.000" in line
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_cascade_reads_what_the_rules_cannot_and_rescoring_keeps_it(cli, tiny_llama, flaky, tmp_path):
    url, log = flaky
    run = tmp_path / "run"
    code, out, err = cli("run", "--model", tiny_llama, "--tasks", "demo_mcq", "--mode", "generate",
                         "--judge", _config(tmp_path / "judge.yaml", url), "--cache_dir", tmp_path / "cache",
                         "--output_dir", run, "--no_index", "--quiet")
    assert code == 0, err
    records = _records(run, "demo_mcq")
    asked = [r for r in records if "judge_read" in r]
    assert asked, "the tiny model's answers give the rules nothing to read, so the judge is asked"
    for r in asked:  # the endpoint names the first capital A-E in the answer, else none
        letters = [ch for ch in answer_text(r) if ch in "ABCDE"]
        want = [letters[0]] if letters and letters[0] in r["doc"]["options"] else []
        assert (r["judge_read"]["letters"] or []) == want and r["filtered_resps"] == want
        assert r["no_answer"] == (0.0 if want else 1.0)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["aimed"]["judge"]["tasks"]["demo_mcq"]["cascade"]["asked_for"] == len(asked)
    no_answer = results["results"]["demo_mcq"]["no_answer,none"]
    assert no_answer == pytest.approx(sum(r["no_answer"] for r in records) / len(records))

    code, out, err = cli("score", run)  # re-scored without the judge: its readings stay
    assert code == 0, err
    assert json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]["demo_mcq"]["no_answer,none"] \
        == no_answer
