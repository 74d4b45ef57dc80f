"""``aimed-eval demo`` end to end: the tiny base model built here, PT → SFT → RM → PPO → DPO on
the bundled demo data, every checkpoint scored, the gates applied, the leaderboard printed
and the HTML report written; a second run redoes nothing."""

import json

from aimed.trainers import stages as stages_mod


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
    decided = stdout.split("== what the gate decided ==", 1)[1]
    assert "sft  promoted" in decided and "rm   reward model" in decided
    board = decided.split("== tiny-llama ==", 1)[1]
    for stage, rec in line["stages"].items():
        if stage != "rm":  # the reward model is scored by pair accuracy, not on the demo tasks
            for c in rec["checkpoints"]:
                assert f"{stage}/{c['path'].rsplit('/', 1)[1]}" in board
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="pipeline"' in html and "✅ promoted" in html and "🎯 reward model" in html
    # a second run: nothing trained again, the same decisions shown
    calls = []
    monkeypatch.setattr(stages_mod, "train_stage", lambda stage, config: calls.append(stage))
    code, again, _ = cli("demo", "--out", out)
    assert code == 0 and calls == [] and "sft: done earlier: promoted" in again
