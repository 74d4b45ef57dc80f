"""``aimed-eval demo`` end to end: the tiny base model built here, PT → SFT → RM → PPO → DPO on
the bundled demo data, every checkpoint scored, the gates applied, the leaderboard printed
and the HTML report written; a second run redoes nothing."""

import json
import re
import shlex

from aimed.trainers import stages as stages_mod

# each stage's bar at its end: steps done of all, elapsed < time left, the latest figures
STAGE_BARS = {"pt": (6, "loss="), "sft": (90, "loss="), "rm": (12, "loss="), "ppo": (4, "reward="),
              "dpo": (6, "loss=")}


def test_demo_runs_the_whole_loop(cli, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    code, stdout, err = cli("demo", "--out", out)
    assert code == 0, err[-2000:]
    state = json.loads((out / "pipeline_state.json").read_text(encoding="utf-8"))
    line = state["lines"]["tiny-llama"]
    assert line["status"] == "done" and list(line["stages"]) == ["pt", "sft", "rm", "ppo", "dpo"]
    verdicts = {s: r["decision"]["verdict"] for s, r in line["stages"].items()}
    assert verdicts == {"pt": "promoted", "sft": "promoted", "rm": "reward model", "ppo": "promoted",
                        "dpo": "promoted"}
    # SFT learnt demo_mcq: the gate saw a significant gain of at least the 0.2 the demo's policy asks
    acc = next(c for c in line["stages"]["sft"]["decision"]["checks"] if (c["task"], c["metric"]) == ("demo_mcq", "acc"))
    assert acc["delta"] >= 0.2 and acc["p_value"] < 0.05 and acc["promotion"] == "met"
    assert line["stages"]["ppo"]["parent"] == line["stages"]["sft"]["decision"]["promoted_checkpoint"]
    assert line["stages"]["ppo"]["train_metrics"]["last_reward"] > line["stages"]["ppo"]["train_metrics"]["first_reward"]
    # what the gate decided, then the leaderboard with every scored stage's checkpoints
    # the pipeline prints each stage's first -> last figures, not the trainer's log lines
    assert "{'loss'" not in stdout + err and "sft: trained (90 steps, loss" in stdout
    # the gate's decision in words, never a tick beside a drop
    assert re.search(r"^\[tiny-llama\] sft: trained \(90 steps, .*\); gate: promoted checkpoint-\d+ \(.*\): "
                     r"demo_mcq/acc \d\.\d{4} → \d\.\d{4}, significant gain \(\+\d\.\d{4}, p <?\d\.\d{4}\)$", stdout, re.M)
    assert "gate ✅" not in stdout and "gate: " in stdout
    decided = stdout.split("== what the gate decided ==", 1)[1]
    assert "sft  promoted" in decided and "rm   reward model" in decided
    board = decided.split("== tiny-llama ==", 1)[1]
    for stage, rec in line["stages"].items():
        if stage != "rm":  # the reward model is scored by pair accuracy, not on the demo tasks
            for c in rec["checkpoints"]:
                assert f"{stage}/{c['path'].rsplit('/', 1)[1]}" in board
    # every stage shows a progress bar (on stderr); the checkpoint lines are written above it, on lines of their own
    for stage, (total, figure) in STAGE_BARS.items():
        assert re.search(rf"(^|[\r\n]){stage}: 100%\|[^\r\n]*\| {total}/{total} \[\d\d:\d\d<00:00, [^\]\r\n]*"
                         rf"{figure}[^\]\r\n]*\]", err), (stage, err[-3000:])
        assert re.search(rf"(^|[\r\n]){stage}:  *\d+%\|[^\r\n]*\| \d+/{total} \[\d\d:\d\d<\d\d:\d\d", err), stage
    for stage, rec in line["stages"].items():
        for c in rec["checkpoints"]:
            assert re.search(rf"^\[{stage}\] {c['path'].rsplit('/', 1)[1]}: ", stdout, re.M), (stage, c["path"])
    # the next steps: the dashboard with its extra, the report, and a compare and a gate of two of its runs
    steps = stdout.split("== next steps ==", 1)[1]
    sft = line["stages"]["sft"]
    parent_run, sft_run = sft["parent_run"], sft["decision"]["promoted_run"]
    assert f"the report (open it in a browser):  {out / 'report.html'}" in steps
    assert "pip install 'aimed-eval[dashboard]'" in steps and f"aimed-eval dashboard --db {out / 'aimed_index.sqlite'}" in steps
    commands = {c.split()[1]: shlex.split(c)[1:] for c in steps.splitlines() if c.startswith("  aimed-eval ")}
    assert commands["compare"] == ["compare", parent_run, sft_run]
    assert commands["gate"] == ["gate", "--baseline", parent_run, "--candidate", sft_run, "--policy",
                                str(out / "gates.yaml")]
    assert commands["pipeline"] == ["pipeline", "--config", str(out / "pipeline.yaml")]
    for name in ("compare", "gate"):  # they run as printed
        code, shown, err2 = cli(*commands[name])
        assert code == 0 and "demo_mcq" in shown, (name, err2)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="pipeline"' in html and '<td class="verdict v-promoted"><span>promoted</span></td>' in html
    assert '<td class="verdict v-reward-model"><span>reward model</span></td>' in html and "✅" not in html
    # a second run: nothing trained again, the same decisions shown
    calls = []
    monkeypatch.setattr(stages_mod, "train_stage", lambda stage, config: calls.append(stage))
    code, again, _ = cli("demo", "--out", out)
    assert code == 0 and calls == [] and "sft: done earlier: promoted" in again
