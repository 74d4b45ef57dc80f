"""CircularEval (``--circular``): rotations by hand, a model trained here to always answer
the first position, a position-free scorer, the cache, compare/gate and lm-eval export."""

import json
import shutil
from pathlib import Path

import pytest

from aimed.harness.samples import Sample
from aimed.harness.scoring.circular import rotate


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def _records(run_dir: Path, task: str) -> list[dict]:
    return [json.loads(x) for x in (run_dir / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]


# ---- rotations, checked by hand -------------------------------------------------------------
MULTI = Sample(id="m1", question="q", options={"A": "甲", "B": "乙", "C": "丙", "D": "丁", "E": "戊"},
               answer=("A", "C"))


@pytest.mark.parametrize("r, options, answer", [
    (1, "乙丙丁戊甲", ("B", "E")),   # 甲 (gold) goes to E, 丙 (gold) to B
    (2, "丙丁戊甲乙", ("A", "D")),
    (3, "丁戊甲乙丙", ("C", "E")),
    (4, "戊甲乙丙丁", ("B", "D")),
])
def test_multi_answer_rotation_by_hand(r, options, answer):
    rotated = rotate(MULTI, r)
    assert "".join(rotated.options.values()) == options
    assert list(rotated.options) == list("ABCDE")
    assert rotated.answer == answer
    # the gold texts are the same texts, wherever they went
    assert {rotated.options[a] for a in rotated.answer} == {"甲", "丙"}


def test_single_answer_four_options():
    s = Sample(id="s", question="q", options={"A": "w", "B": "x", "C": "y", "D": "z"}, answer=("D",))
    assert [rotate(s, r).answer for r in range(4)] == [("D",), ("C",), ("B",), ("A",)]
    assert rotate(s, 0) == Sample(id="s", question="q", options=s.options, answer=("D",), target="D")


# ---- a model that always answers the first position ----------------------------------------
@pytest.fixture(scope="module")
def always_a(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama fine-tuned here (a few steps of Adam on the demo items' prompts, every
    rotation of them) to answer "A" after 答案：, whatever the options are."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aimed.harness.runner import RunOptions, build_requests
    from aimed.harness.taskregistry import resolve_tasks

    out = tmp_path_factory.mktemp("models") / "always-a"
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    requests, _, _, _ = build_requests(resolve_tasks(["demo_mcq"])[0], RunOptions(circular=True))
    answer = tok("A", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    batches = [tok(r.context, add_special_tokens=False)["input_ids"] + answer for r in requests]
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(40):
        ids = batches[step % len(batches)]
        labels = [-100] * (len(ids) - len(answer)) + answer
        loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("mode", ["loglikelihood", "generate"])
def test_first_position_model_is_caught(cli, always_a, tmp_path, mode):
    out = tmp_path / mode
    code, stdout, err = cli("run", "--model", always_a, "--tasks", "demo_mcq", "--mode", mode, "--circular",
                            "--output_dir", out, "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    recs = _records(out, "demo_mcq")
    n = len(recs)
    assert n == 24
    # it answers A under every rotation of every item ...
    answers = [tuple(r["filtered_resps"]) for r in recs] + [tuple(c["filtered_resps"]) for r in recs
                                                          for c in r["circular"]]
    assert answers.count(("A",)) >= 0.95 * len(answers)
    res = _results(out)["results"]["demo_mcq"]
    gold_a = sum(r["doc"]["answer"] == ["A"] for r in recs) / n
    # ... so plain acc is the share of items whose answer happens to be A, and acc_circular is 0
    assert res["acc,none"] == pytest.approx(gold_a, abs=1.5 / n)
    assert res["acc_circular,none"] == pytest.approx(0.0, abs=1.5 / n)
    assert res["order_sensitivity,none"] >= 0.95
    for r in range(1, 5):
        assert f"acc_rot{r},none" in res and f"acc_rot{r}_stderr,none" in res
    assert "acc_rot5,none" not in res  # demo items have five options
    assert "acc_circular" in stdout and "order_sensitivity" in stdout
    # per-item values are what the task block summarises
    assert sum(r["acc_circular"] for r in recs) / n == pytest.approx(res["acc_circular,none"])
    assert _results(out)["higher_is_better"]["demo_mcq"]["order_sensitivity"] is False
    # per-category breakdowns carry the circular metrics too
    cats = _results(out)["aimed"]["categories"]["demo_mcq"]
    cell = next(iter(next(iter(cats.values())).values()))
    assert "acc_circular" in cell and "order_sensitivity_stderr" in cell


def test_position_free_scorer_equal(cli, always_a, tmp_path):
    """Cloze mode never shows the letters: its choice cannot depend on their order."""
    out = tmp_path / "cloze"
    code, _, err = cli("run", "--model", always_a, "--tasks", "demo_mcq", "--mode", "cloze", "--circular",
                       "--output_dir", out, "--no_cache", "--no_index", "--quiet")
    assert code == 0, err
    res = _results(out)["results"]["demo_mcq"]
    assert res["acc_circular,none"] == pytest.approx(res["acc,none"])
    assert res["order_sensitivity,none"] == 0.0
    assert res["acc_rot1,none"] == pytest.approx(res["acc,none"])
    for rec in _records(out, "demo_mcq"):  # the same texts chosen, under other letters
        for rot in rec["circular"]:
            assert rot["acc"] == rec["acc"]
            chosen = {rot["options"][x] for x in rot["filtered_resps"]}
            assert chosen == {rec["doc"]["options"][x] for x in rec["filtered_resps"]}


def test_original_order_served_from_cache_and_acc_unchanged(cli, tiny_llama, tmp_path):
    cache = tmp_path / "cache"
    common = ["--model", tiny_llama, "--tasks", "demo_mcq", "--cache_dir", cache, "--no_index", "--quiet"]
    assert cli("run", *common, "--output_dir", tmp_path / "plain")[0] == 0
    code, _, err = cli("run", *common, "--circular", "--output_dir", tmp_path / "circ")
    assert code == 0, err
    plain, circ = _results(tmp_path / "plain"), _results(tmp_path / "circ")
    timing = circ["aimed"]["timings"]["demo_mcq"]
    assert timing["cached"] == 24                      # the published order: the plain run's requests
    recs = _records(tmp_path / "circ", "demo_mcq")
    rotations = sum(len(r["doc"]["options"]) - 1 for r in recs)
    assert rotations == 22 * 4 + 2 * 3                 # 22 five-option items, 2 four-option ones
    assert timing["computed"] == rotations
    assert circ["results"]["demo_mcq"]["acc,none"] == plain["results"]["demo_mcq"]["acc,none"]
    assert circ["aimed"]["options"]["circular"] == ["demo_mcq"]
    # the samples keep every rotation's raw output; re-scoring them without the model agrees
    rescored = tmp_path / "rescored"
    shutil.copytree(tmp_path / "circ", rescored)
    assert cli("score", rescored)[0] == 0
    assert _results(rescored)["results"]["demo_mcq"] == circ["results"]["demo_mcq"]


def test_spec_key_and_compare_gate_on_circular(cli, tiny_llama, tiny_qwen2, tmp_path):
    spec = tmp_path / "circ_mcq.yaml"
    src = Path(__file__).resolve().parents[2] / "tasks" / "specs" / "demo_mcq.yaml"
    spec.write_text(src.read_text(encoding="utf-8").replace("task: demo_mcq", "task: circ_mcq")
                    .replace("../demo_data/", str(src.parents[1] / "demo_data") + "/") + "circular: true\n",
                    encoding="utf-8")
    runs = {}
    for name, model in (("a", tiny_llama), ("b", tiny_qwen2)):
        runs[name] = tmp_path / name
        code, _, err = cli("run", "--model", model, "--tasks", spec, "--output_dir", runs[name], "--no_cache",
                           "--no_index", "--quiet")
        assert code == 0, err
        assert "acc_circular,none" in _results(runs[name])["results"]["circ_mcq"]
    code, out, err = cli("compare", runs["a"], runs["b"], "--format", "json", "--out", tmp_path / "cmp.json")
    assert code == 0, err
    rows = {r["metric"]: r for r in json.loads((tmp_path / "cmp.json").read_text())["metrics"]
            if r["task"] == "circ_mcq"}
    a, b = _records(runs["a"], "circ_mcq"), _records(runs["b"], "circ_mcq")
    assert rows["acc_circular"]["n"] == 24            # paired on items
    delta = sum(x["acc_circular"] for x in b) / 24 - sum(x["acc_circular"] for x in a) / 24
    assert rows["acc_circular"]["delta"] == pytest.approx(delta)
    assert rows["acc_circular"]["test"] == rows["acc"]["test"]  # 0/1 per item, as acc
    assert rows["order_sensitivity"]["higher_is_better"] is False
    policy = tmp_path / "gates.yaml"
    policy.write_text("rules:\n  circ_mcq:\n    acc_circular: {max_drop: 0.0, require_significant: false}\n",
                      encoding="utf-8")
    code, out, err = cli("gate", "--candidate", runs["b"], "--baseline", runs["a"], "--policy", policy,
                         "--json", tmp_path / "v.json")
    verdict = json.loads((tmp_path / "v.json").read_text())
    check = next(c for c in verdict["checks"] if c["metric"] == "acc_circular")
    assert check["rule"] == "circ_mcq/acc_circular" and check["delta"] == pytest.approx(delta)
    assert check["status"] == ("fail" if delta < -1e-12 else "pass")
    assert code == (1 if verdict["failures"] else 0), out + err


def test_export_rotated_items_agree_with_lm_eval_layout(cli, tmp_path):
    out = tmp_path / "ex"
    code, stdout, err = cli("export-lm-eval", "--tasks", "demo_mcq", "--circular", "--out", out, "--limit", "3",
                            "--mode", "cloze")
    assert code == 0, err
    assert "3 items and 12 rotations of them" in stdout
    docs = [json.loads(x) for x in (out / "data" / "aimed_demo_mcq.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(docs) == 15 and len({d["id"] for d in docs}) == 15
    by_id = {d["id"]: d for d in docs}
    for base in [d for d in docs if "@rot" not in d["id"]]:
        for r in range(1, 5):
            rot = by_id[f"{base['id']}@rot{r}"]
            # the gold option text is the same text under its new letter
            gold = base["gold"] if isinstance(base["gold"], list) else [base["gold"]]
            rgold = rot["gold"] if isinstance(rot["gold"], list) else [rot["gold"]]
            assert {rot["choices"][i] for i in rgold} == {base["choices"][i] for i in gold}
            assert rot["prompt"] == base["prompt"]  # cloze: the options are not in the prompt
    assert "CircularEval" in (out / "aimed_demo_mcq.yaml").read_text(encoding="utf-8")
    # loglikelihood: the rotated options are in the prompt, the gold letter moves with its text
    code, _, err = cli("export-lm-eval", "--tasks", "demo_mcq", "--circular", "--out", tmp_path / "ll", "--limit", "1")
    assert code == 0, err
    docs = [json.loads(x) for x in (tmp_path / "ll" / "data" / "aimed_demo_mcq.jsonl").read_text().splitlines()]
    texts = []
    for d in docs:
        letter = d["choices"][d["gold"] if isinstance(d["gold"], int) else d["gold"][0]]
        line = next(x for x in d["prompt"].splitlines() if x.startswith(f"{letter}. "))
        texts.append(line[3:])
    assert len(docs) == 5 and len(set(texts)) == 1 and len({d["gold"] for d in docs}) == 5
