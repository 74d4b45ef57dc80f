"""The gate on two tiny checkpoints that truly differ: one trained to answer the demo
multiple-choice set, one not. Then policies, the best of several candidates, and bad input."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aimed.harness.cli import build_parser, main
from aimed.harness.errors import UserError
from aimed.harness.gate import choose_best, gate
from aimed.harness.gate_policy import Policy, load_policy

REPO = Path(__file__).resolve().parents[2]


def _score(model: Path, out: Path, cache: Path) -> Path:
    code = main(["run", "--model", str(model), "--tasks", "demo_mcq", "--output_dir", str(out),
                 "--cache_dir", str(cache), "--no_index", "--quiet"])
    assert code == 0
    return out


def train_to_answer(model_dir: Path, samples_file: Path, max_steps: int = 80) -> int:
    """Train the checkpoint in place (plain torch, AdamW) on the prompts it was scored on:
    after each item's context, the gold letters get the probability among the option
    letters (shared evenly on multi-answer items). Stops three steps after every item is
    answered right by the harness's own rule (``choose``). Returns the steps taken."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aimed.harness.scoring.choose import choose

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    records = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines()]
    contexts, letter_ids, soft = [], [], []
    for r in records:
        ctx, conts, gold = r["arguments"]["context"], r["arguments"]["continuations"], r["doc"]["answer"]
        ids = tok.encode(ctx, add_special_tokens=False)
        # the letter's token as the backend scores it: context + letter, the context taken off
        letters = [tok.encode(ctx + c, add_special_tokens=False)[len(ids):] for c in conts]
        assert all(len(t) == 1 for t in letters), "option letters must be single tokens"
        contexts.append(ids)
        letter_ids.append([t[0] for t in letters])
        soft.append([1 / len(gold) if c in gold else 0.0 for c in conts])
    width, k = max(map(len, contexts)), max(map(len, letter_ids))
    ids = torch.zeros(len(records), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(contexts):  # left-padded, as the backend batches
        ids[i, width - len(c):], mask[i, width - len(c):] = torch.tensor(c), 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    valid = torch.tensor([[j < len(x) for j in range(k)] for x in letter_ids])
    letters = torch.tensor([x + [0] * (k - len(x)) for x in letter_ids])
    target = torch.tensor([x + [0.0] * (k - len(x)) for x in soft])
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    extra = None
    with torch.enable_grad():  # the harness's model loading turns grad off process-wide
        for step in range(1, max_steps + 1):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits[:, -1]
            option_lp = torch.log_softmax(logits, -1).gather(1, letters).masked_fill(~valid, -1e9)  # [items, k]
            loss = -(target * torch.log_softmax(option_lp, -1)).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            right = sum(choose(dict(zip(r["arguments"]["continuations"], option_lp[i].tolist())),
                               len(r["doc"]["answer"]) > 1) == tuple(r["doc"]["answer"])
                        for i, r in enumerate(records))
            extra = (3 if extra is None else extra - 1) if right == len(records) else None
            if extra == 0:
                break
    model.save_pretrained(model_dir, safe_serialization=True)
    return step


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    untrained = _score(tiny_llama, root / "untrained", root / "cache")
    model = root / "trained-model"
    shutil.copytree(tiny_llama, model)
    steps = train_to_answer(model, untrained / "samples_demo_mcq.jsonl")
    trained = _score(model, root / "trained", root / "cache")
    return {"untrained": untrained, "trained": trained, "root": root, "steps": steps}


def _acc(run: Path) -> float:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))["results"]["demo_mcq"]["acc,none"]


def test_the_checkpoints_truly_differ(runs):
    assert _acc(runs["trained"]) == 1.0
    assert _acc(runs["untrained"]) < 0.5
    assert runs["steps"] < 80


def test_gate_fails_a_regression_and_names_it(runs, cli, tmp_path):
    verdict, summary = tmp_path / "verdict.json", tmp_path / "summary.md"
    code, out, err = cli("gate", "--candidate", runs["untrained"], "--baseline", runs["trained"],
                         "--json", verdict, "--summary", summary)
    assert code == 1
    assert "## ❌ Gate failed: demo_mcq/acc" in out
    assert "| fail: significant drop | demo_mcq | acc | 1.0000 |" in out  # the outcome in words
    assert err.strip() == "aimed-eval: gate failed: demo_mcq/acc"
    v = json.loads(verdict.read_text(encoding="utf-8"))
    assert v["passed"] is False and v["promoted"] is False
    (fail,) = v["failures"]
    assert (fail["task"], fail["metric"], fail["test"]) == ("demo_mcq", "acc", "mcnemar")
    assert fail["delta"] == pytest.approx(_acc(runs["untrained"]) - 1.0)
    assert fail["p_value"] < 0.001 and fail["ci"][1] < 0
    assert summary.read_text(encoding="utf-8") == out


def test_gate_passes_the_improvement_and_a_run_against_itself(runs, cli):
    code, out, err = cli("gate", "--candidate", runs["trained"], "--baseline", runs["untrained"])
    assert code == 0 and out.startswith("## ✅ Gate passed") and err == ""
    assert "| pass: significant gain | demo_mcq | acc |" in out and "| outcome | task | metric |" in out
    code, out, _ = cli("gate", "--candidate", runs["trained"], "--baseline", runs["trained"])
    assert code == 0 and "| pass: no change | demo_mcq | acc | 1.0000 | 1.0000 | +0.0000 |" in out


def test_policy_max_drop_and_promotion(runs, tmp_path):
    policy = Policy.model_validate({"rules": {"demo_mcq": {"acc": {"max_drop": 0.0, "min_gain": 0.5,
                                                                   "require_significant": True}}}})
    up = gate(runs["trained"], runs["untrained"], policy)
    assert up.passed and up.promoted and [c.metric for c in up.checks] == ["acc"]
    too_much = Policy.model_validate({"rules": {"demo_mcq": {"acc": {"min_gain": 1.5}}}})
    assert gate(runs["trained"], runs["untrained"], too_much).promoted is False
    # a drop within max_drop passes even when significant; beyond it fails even when not asked to be
    drop = 1.0 - _acc(runs["untrained"])
    lenient = Policy.model_validate({"rules": {"*": {"acc": {"max_drop": drop + 0.01}}}})
    assert gate(runs["untrained"], runs["trained"], lenient).passed
    strict = Policy.model_validate({"rules": {"demo_mcq": {"acc": {"max_drop": drop - 0.01,
                                                                   "require_significant": False}}}})
    (failure,) = gate(runs["untrained"], runs["trained"], strict).failures
    assert (failure.task, failure.metric, failure.drop) == ("demo_mcq", "acc", pytest.approx(drop))


def test_choose_best_of_several(runs, cli):
    sel = choose_best([runs["untrained"], runs["trained"]], runs["untrained"])
    assert sel.best.candidate["run_dir"] == str(runs["trained"])
    assert [v.passed for v in sel.verdicts] == [True, True]
    sel = choose_best([runs["untrained"], runs["trained"]], runs["trained"])
    assert sel.best.candidate["run_dir"] == str(runs["trained"]) and sel.verdicts[0].passed is False
    code, out, _ = cli("gate", "--candidate", runs["untrained"], "--candidate", runs["trained"],
                       "--baseline", runs["trained"])
    assert code == 0 and f"**Best candidate** (by suite/score): `{runs['trained']}`" in out


def test_example_policy_is_valid_and_names_real_tasks(runs):
    policy = load_policy(REPO / "docs" / "gates.example.yaml")
    assert policy.rules["cmexam"]["acc"].max_drop == 0.01 and policy.rules["suite"]["score"].min_gain == 0.01
    from aimed.harness.plugins import load_plugins
    from aimed.harness.taskregistry import builtin_specs, load_spec

    load_plugins()
    known = builtin_specs()
    for task, metrics in policy.rules.items():
        if task in ("*", "suite"):
            continue
        assert task in known, task
        spec, _ = load_spec(task)
        assert all(m == "*" or m in spec.metrics for m in metrics), (task, metrics)
    with pytest.raises(UserError, match="rules names task 'cmexam', which the runs do not both have"):
        gate(runs["trained"], runs["untrained"], REPO / "docs" / "gates.example.yaml")


def test_ci_workflow_in_the_docs_parses_and_its_commands_are_real():
    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    workflow = yaml.safe_load(block)
    steps = workflow["jobs"]["gate"]["steps"]
    runs_ = "\n".join(s.get("run", "") for s in steps)
    assert "gh pr comment" in runs_ and "--body-file summary.md" in runs_
    import shlex

    for cmd in ("aimed-eval run", "aimed-eval gate"):
        line = runs_.split(cmd, 1)[1].split("\n\n")[0]
        line = (cmd + line).replace("\\\n", " ").splitlines()[0]
        argv = [a for a in shlex.split(line.replace('"$CANDIDATE_MODEL"', "ckpt"))][1:]
        ns = build_parser().parse_args(argv)
        assert ns.command == cmd.split()[1]
    assert ns.policy == Path("docs/gates.example.yaml") and ns.json == Path("verdict.json")


# ---- bad input: one line, exit 2, nothing written -----------------------------------------
def _bad(cli, *argv):
    code, out, err = cli("gate", *argv)
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err.strip()


def test_bad_input(runs, cli, tmp_path):
    good, other = runs["trained"], runs["untrained"]
    verdict = tmp_path / "verdict.json"
    err = _bad(cli, "--candidate", tmp_path / "nowhere", "--baseline", good, "--json", verdict)
    assert "nowhere: no such run folder" in err and not verdict.exists()

    corrupt = tmp_path / "corrupt"
    shutil.copytree(other, corrupt)
    (corrupt / "results.json").write_text('{"results": {"demo_mcq": ', encoding="utf-8")
    assert "results.json: not valid JSON" in _bad(cli, "--candidate", corrupt, "--baseline", good)

    policy = tmp_path / "gates.yaml"
    policy.write_text("rules:\n  demo_mcq:\n    acc: {max_dorp: 0.01}\n", encoding="utf-8")
    err = _bad(cli, "--candidate", other, "--baseline", good, "--policy", policy, "--json", verdict)
    assert f"{policy}: unknown key 'max_dorp' at rules.demo_mcq.acc.max_dorp (did you mean 'max_drop'?)" in err
    assert not verdict.exists()
    policy.write_text("alpha: 0.05\nthreshold: 1\n", encoding="utf-8")
    assert "unknown key 'threshold'" in _bad(cli, "--candidate", other, "--baseline", good, "--policy", policy)
    policy.write_text("rules:\n  demo_mcq:\n    acc: {require_significant: 'yes'}\n", encoding="utf-8")
    assert "rules.demo_mcq.acc.require_significant" in _bad(cli, "--candidate", other, "--baseline", good,
                                                             "--policy", policy)
    policy.write_text("rules:\n  demo_mqc:\n    acc: {}\n", encoding="utf-8")
    assert "did you mean 'demo_mcq'" in _bad(cli, "--candidate", other, "--baseline", good, "--policy", policy)

    edited = tmp_path / "other-data"
    shutil.copytree(other, edited)
    results = json.loads((edited / "results.json").read_text(encoding="utf-8"))
    results["aimed"]["tasks"]["demo_mcq"]["data_hash"] = "0000000000000000"
    (edited / "results.json").write_text(json.dumps(results), encoding="utf-8")
    err = _bad(cli, "--candidate", edited, "--baseline", good)
    assert err.startswith("aimed-eval: error: demo_mcq: the runs differ in data_hash")


@pytest.mark.parametrize("delta, p, higher, words", [
    (-0.0148, 0.873, True, "no significant drop (-0.0148, p 0.8730)"),
    (-0.2, 0.001, True, "significant drop (-0.2000, p 0.0010)"),
    (0.7917, 0.00001, True, "significant gain (+0.7917, p <0.0001)"),
    (0.0023, 0.938, True, "gain, not significant (+0.0023, p 0.9380)"),
    (0.3, 0.01, False, "significant drop (+0.3000, p 0.0100)"),  # a lower-is-better metric went up
    (0.0, 1.0, True, "no change (+0.0000, p 1.0000)"),
    (float("nan"), None, True, "no value"),
])
def test_a_change_is_said_in_words(delta, p, higher, words):
    from aimed.harness.gate import change_words

    assert change_words(delta, p, 0.05, higher) == words


def test_rank_by_is_parsed_and_checked_in_one_place():
    """One parser for rank_by, for the gate's policy file and the pipeline's alike."""
    from aimed.harness.gate_policy import RankBy, check_rank_by, parse_policy, parse_rank_by

    assert parse_rank_by("suite/score", "w") == RankBy("suite", "score") and str(RankBy("a", "b")) == "a/b"
    for bad in ("suite", "/acc", "demo_mcq/", "a/b/c", None, 3):
        with pytest.raises(UserError, match=r"^w: rank_by .*give one task/metric row"):
            parse_rank_by(bad, "w")
    with pytest.raises(UserError, match="^p.yaml: rank_by 'demo_mcq': give one task/metric row"):
        parse_policy({"rank_by": "demo_mcq"}, "p.yaml")  # refused as the policy is read, before any run
    policy = parse_policy({"rank_by": "demo_mcq/accuracy"}, "p.yaml")
    assert policy.ranked == RankBy("demo_mcq", "accuracy")
    scored = {"demo_mcq": {"acc", "set_f1"}, "suite": {"score"}}
    with pytest.raises(UserError, match=r"demo_mcq has no metric 'accuracy' \(did you mean 'acc'\?\)"):
        check_rank_by(policy, scored, "p.yaml", "the runs do not both have")
    with pytest.raises(UserError, match="names task 'cmexam', which eval.tasks does not score"):
        check_rank_by(parse_policy({"rank_by": "cmexam/acc"}, "p.yaml"), scored, "p.yaml", "eval.tasks does not score")
    assert check_rank_by(Policy(), scored, "w", "x") == RankBy("suite", "score")


def test_check_words_are_typed():
    from aimed.harness.compare import MetricRow
    from aimed.harness.verdicts import Check, CheckStatus, Promotion

    row = MetricRow("t", "acc", 0.5, 0.6, 0.1, 0.0, 0.2, 0.01, "mcnemar", 10, True, True)
    c = Check(row, "*/*", 0.0, True, 0.05, 0.05, CheckStatus.PASS, Promotion.MET)
    assert (c.baseline, c.candidate, c.kind) == (0.5, 0.6, "task")
    from aimed.harness.gate import check_words

    assert check_words(c) == "pass: significant gain, gain required met"
    row = c.row()
    assert row.status == "pass" and row.ci == [0.0, 0.2] and json.loads(json.dumps(row.__dict__))["promotion"] == "met"
