"""A stage added by an entry point (``stage_plugin_example``) takes part in ``aimed-eval
pipeline`` like a built-in one: the pipeline places it by its RECIPE, trains it, scores
its checkpoints, gates them (ranked by the stage's own rank_by) and records the decision."""

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import yaml

from aimed.trainers import stages


def _register(monkeypatch):
    found = stages.entry_points
    plugin = EntryPoint(name="mcq-sft", value="stage_plugin_example", group=stages.GROUP)
    monkeypatch.setattr(stages, "entry_points", lambda group: [*found(group=group), plugin])


def _config(tmp_path: Path, model: Path, stage_list: list) -> Path:
    data = {"output_root": "out", "base_models": [{"name": "tiny", "model": str(model)}], "stages": stage_list,
            "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "seed": 0},
            "stage_config": {"mcq-sft": {"task": "demo_mcq", "max_steps": 2, "save_steps": 1, "max_length": 256,
                                         "per_device_train_batch_size": 8, "learning_rate": 1.0e-3}},
            "eval": {"tasks": ["demo_mcq"], "limit": 12}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_plugin_stage_is_trained_scored_and_gated(cli, tmp_path, tiny_llama, monkeypatch):
    _register(monkeypatch)
    code, out, err = cli("pipeline", "--config", _config(tmp_path, tiny_llama, ["mcq-sft"]))
    state = json.loads((tmp_path / "out" / "pipeline_state.json").read_text(encoding="utf-8"))
    line = state["lines"]["tiny"]
    rec = line["stages"]["mcq-sft"]
    d = rec["decision"]
    assert code == (0 if d["go_on"] else 1), err
    # trained: two checkpoints of the plugin's own stage, from the base model
    assert rec["status"] == "done" and rec["parent_stage"] == "base" and rec["train_metrics"]["steps"] == 2
    assert [Path(c["path"]).name for c in rec["checkpoints"]] == ["checkpoint-1", "checkpoint-2"]
    manifest = json.loads(Path(rec["checkpoints"][0]["path"], "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "mcq-sft" and manifest["config"]["task"] == "demo_mcq"
    # scored: each checkpoint has its run, judged against the base model's
    assert all(Path(c["run_dir"], "results.json").is_file() for c in rec["checkpoints"])
    assert all(c["passed"] is not None and c["gain"] is not None for c in rec["checkpoints"])
    # gated: by the built-in policy, ranked by the stage's own rank_by (its RECIPE's)
    assert d["kind"] == "gate" and d["verdict"] in ("promoted", "not promoted", "failed")
    assert d["policy"] == "built-in default" and d["rank_by"] == "demo_mcq/acc"
    assert {(c["task"], c["metric"]) for c in d["checks"]} >= {("demo_mcq", "acc")}
    assert Path(d["verdict_file"]).is_file()
    assert line["status"] == ("done" if d["go_on"] else "stopped")
    assert f"mcq-sft {d['verdict']}" in " ".join(out.split())  # the summary names the stage and its verdict


def test_a_plugin_stage_without_a_recipe_is_refused_before_training(cli, tmp_path, tiny_llama, monkeypatch):
    import stage_plugin_example

    _register(monkeypatch)
    monkeypatch.delattr(stage_plugin_example, "RECIPE")
    code, out, err = cli("pipeline", "--config", _config(tmp_path, tiny_llama, ["mcq-sft"]))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "pipeline.yaml:" in err and "declares no RECIPE" in err
    assert not (tmp_path / "out").exists()
