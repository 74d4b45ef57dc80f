"""``aimed-eval pipeline`` on real tiny stages: two base models, one line stopped by the
gate while the other goes on; resume after a stage subset and after an interrupt without
redoing a finished stage; the leaderboard's lineage; the report's gate decisions; bad
input."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aimed.harness.tinymodel import build_tiny_model
from aimed.trainers import stages as stages_mod
from aimed.trainers.demo_cmd import demo_texts

DEMO_DATA = Path(__file__).resolve().parents[2] / "trainers" / "demo_data"

# SFT must raise demo_medterm's rougeL by 0.05 to be promoted; every stage fails on a
# significant drop. Base model "slow" trains SFT with a learning rate too small to get there.
SFT_GATE = {"rank_by": "demo_medterm/rougeL",
            "rules": {"*": {"*": {"max_drop": 0.0, "require_significant": True}},
                      "demo_medterm": {"rougeL": {"max_drop": 0.0, "require_significant": False, "min_gain": 0.05}}}}
PIPELINE = {
    "output_root": "out",
    "base_models": [{"name": "fast", "model": "models/fast"},
                    {"name": "slow", "model": "models/slow", "config": {"learning_rate": 1.0e-7}}],
    "stages": ["pt", "sft", "dpo"],
    "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0,
                 "logging_steps": 5},
    "stage_config": {
        "pt": {"train_files": ["pretrain.txt"], "max_length": 64, "learning_rate": 1.0e-4, "max_steps": 2,
               "save_steps": 1, "per_device_train_batch_size": 8},
        "sft": {"train_files": ["sft.jsonl"], "max_length": 160, "learning_rate": 5.0e-3, "max_steps": 60,
                "save_steps": 30, "per_device_train_batch_size": 16},
        "dpo": {"train_files": ["preference.jsonl"], "max_length": 96, "learning_rate": 1.0e-5, "max_steps": 2,
                "save_steps": 2, "per_device_train_batch_size": 8}},
    "eval": {"tasks": ["demo"]},
    "stage_gates": {"sft": SFT_GATE},
}


def write_pipeline(folder: Path, data: dict) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):
        shutil.copyfile(DEMO_DATA / name, root / name)
    texts = demo_texts(root)
    build_tiny_model(root / "models" / "fast", texts, arch="llama", seed=0, max_positions=512)
    build_tiny_model(root / "models" / "slow", texts, arch="qwen2", seed=1, max_positions=512)
    write_pipeline(root, PIPELINE)
    return root


class Calls:
    """Wraps train_stage: records each (base model, stage) trained; optionally interrupts one."""

    def __init__(self, monkeypatch, interrupt=None):
        self.calls, self.interrupt = [], interrupt
        real = stages_mod.train_stage

        def wrapped(stage, config):
            self.calls.append((config.base_model, stage))
            if (config.base_model, stage) == self.interrupt:
                self.interrupt = None
                # a kill in the middle of the stage: something is on disk, nothing is gated
                Path(config.output_dir, "checkpoint-1").mkdir(parents=True)
                raise KeyboardInterrupt
            return real(stage, config)

        monkeypatch.setattr(stages_mod, "train_stage", wrapped)


def state_of(root: Path) -> dict:
    return json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs(workdir):
    """Five runs of one pipeline: pt alone; everything, interrupted in fast's dpo; the rerun
    that finishes; a rerun with nothing left to do; a rerun after dpo's settings changed."""
    from aimed.harness.cli import main

    mp = pytest.MonkeyPatch()
    config = workdir / "pipeline.yaml"
    out = {}
    try:
        for name, argv, interrupt in (
                ("pt_only", ["--stages", "pt"], None),
                ("interrupted", [], ("fast", "dpo")),
                ("resumed", [], None),
                ("again", [], None),
                ("edited", [], None)):
            if name == "edited":  # dpo's settings change: only dpo is redone (slow never got there)
                data = json.loads(json.dumps(PIPELINE))
                data["stage_config"]["dpo"]["max_steps"] = 3
                write_pipeline(workdir, data)
            calls = Calls(mp, interrupt)
            code = main(["pipeline", "--config", str(config), *argv])
            out[name] = {"code": code, "calls": calls.calls, "state": state_of(workdir)}
            mp.undo()
    finally:
        mp.undo()
    return out


def test_one_line_stopped_by_the_gate_the_other_goes_on(runs):
    final = runs["resumed"]
    assert final["code"] == 1  # a gate stopped a line
    fast, slow = final["state"]["lines"]["fast"], final["state"]["lines"]["slow"]
    assert fast["status"] == "done" and list(fast["stages"]) == ["pt", "sft", "dpo"]
    sft = fast["stages"]["sft"]["decision"]
    assert sft["verdict"] == "promoted" and sft["go_on"]
    gain = next(c for c in sft["checks"] if (c["task"], c["metric"]) == ("demo_medterm", "rougeL"))
    assert gain["delta"] >= 0.05 and gain["promotion"] == "met"
    assert fast["current"]["stage"] == "dpo"
    assert slow["status"] == "stopped" and list(slow["stages"]) == ["pt", "sft"]  # dpo never started
    d = slow["stages"]["sft"]["decision"]
    assert d["verdict"] == "not promoted" and not d["go_on"] and d["promoted_checkpoint"] is None
    assert [(f["task"], f["metric"]) for f in d["failures"]] == [("demo_medterm", "rougeL")]
    assert abs(d["failures"][0]["delta"]) < 0.05
    assert slow["reason"].startswith("sft: ") and "min_gain 0.05" in slow["reason"]
    verdict = json.loads(Path(d["verdict_file"]).read_text(encoding="utf-8"))
    assert verdict["best"] is not None and verdict["decision"]["verdict"] == "not promoted"
    assert len(verdict["verdicts"]) == len(slow["stages"]["sft"]["checkpoints"]) == 2


def test_resume_redoes_no_finished_stage(runs):
    assert runs["pt_only"]["calls"] == [("fast", "pt"), ("slow", "pt")]
    assert runs["pt_only"]["code"] == 0
    # pt is not trained again; the interrupt hit fast's dpo before anything was gated
    assert runs["interrupted"]["code"] == 130
    assert runs["interrupted"]["calls"] == [("fast", "sft"), ("fast", "dpo")]
    dpo = runs["interrupted"]["state"]["lines"]["fast"]["stages"]["dpo"]
    assert dpo["status"] == "running" and dpo["decision"] is None
    # the rerun redoes only the interrupted stage, then the other line
    assert runs["resumed"]["calls"] == [("fast", "dpo"), ("slow", "sft")]
    assert runs["again"]["calls"] == [] and runs["again"]["code"] == 1
    assert runs["edited"]["calls"] == [("fast", "dpo")] and runs["edited"]["code"] == 1
    redone = runs["edited"]["state"]["lines"]["fast"]["stages"]["dpo"]
    assert [Path(c["path"]).name for c in redone["checkpoints"]] == ["checkpoint-2", "checkpoint-3"]
    assert redone["train_metrics"]["steps"] == 3
    pt = [r["state"]["lines"]["fast"]["stages"]["pt"] for r in runs.values()]
    assert len({(p["started"], p["finished"]) for p in pt}) == 1  # recorded once, never redone
    done = runs["resumed"]["state"]["lines"]["fast"]["stages"]["dpo"]
    assert done["status"] == "done" and [Path(c["path"]).name for c in done["checkpoints"]] == ["checkpoint-2"]


def test_leaderboard_lists_every_checkpoint_with_its_lineage(runs, workdir, cli):
    code, out, err = cli("leaderboard", "--db", workdir / "out" / "aimed_index.sqlite", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    state = runs["edited"]["state"]["lines"]
    for base, line in state.items():
        mine = [r for r in rows if r["base_model"] == base]
        assert [r["stage"] for r in mine if r["stage"] == "base"] == ["base"]
        for stage, rec in line["stages"].items():
            got = sorted((r["checkpoint"], r["parent"]) for r in mine if r["stage"] == stage)
            want = sorted((f"{stage}/{Path(c['path']).name}", rec["parent"]) for c in rec["checkpoints"])
            assert got == want, (base, stage)
    # each stage starts from the checkpoint promoted before it
    fast = state["fast"]["stages"]
    assert fast["sft"]["parent"] == fast["pt"]["decision"]["promoted_checkpoint"]
    assert fast["dpo"]["parent"] == fast["sft"]["decision"]["promoted_checkpoint"]
    assert fast["pt"]["parent"] == str(workdir / "models" / "fast")


def test_report_shows_the_gate_decisions(runs, workdir, cli, tmp_path):
    db = workdir / "out" / "aimed_index.sqlite"
    code, out, err = cli("report", "--db", db, "--out", tmp_path / "r.md", "--format", "markdown")
    assert code == 0, err
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    section = md.split("## Pipeline", 1)[1].split("\n## ", 1)[0]
    assert "### fast: done" in section and "### slow: stopped by the gate" in section
    from aimed.reports import pipeline as pl

    verdicts = [row.split(" | ")[pl.VERDICT_COLUMN] for row in section.splitlines() if row.startswith("| ") and " | " in row
                and row.split(" | ")[0][2:] in ("pt", "sft", "rm", "ppo", "dpo")]
    assert verdicts.count("promoted") == 4 and verdicts.count("not promoted") == 1  # verdicts in words
    assert "✅" not in section and "⛔" not in section
    slow_sft = next(line for line in section.split("### slow", 1)[1].splitlines() if line.startswith("| sft |"))
    assert "demo_medterm/rougeL" in slow_sft and "min_gain 0.05" in slow_sft
    code, _, err = cli("report", "--db", db, "--out", tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert code == 0 and 'id="pipeline"' in html and "stopped by the gate" in html
    assert html.count('<td class="verdict v-promoted"><span>promoted</span></td>') == 4  # a CSS badge, no emoji
    assert html.count('<td class="verdict v-not-promoted"><span>not promoted</span></td>') == 1


def _bad(workdir, cli, tmp_path, change) -> str:
    data = json.loads(json.dumps(PIPELINE))
    change(data)
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):
        shutil.copyfile(workdir / name, tmp_path / name)
    (tmp_path / "models").symlink_to(workdir / "models")
    code, out, err = cli("pipeline", "--config", write_pipeline(tmp_path, data))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (code, out, err)
    assert not (tmp_path / "out").exists()  # nothing started
    return err


def test_unknown_key_names_file_line_and_key(workdir, cli, tmp_path):
    err = _bad(workdir, cli, tmp_path, lambda d: d["base_models"][0].update(chekpoint="x"))
    assert "pipeline.yaml:5: unknown key 'chekpoint' at base_models[0]" in err
    err = _bad(workdir, cli, tmp_path / "b", lambda d: d["stage_config"]["sft"].update(lerning_rate=1))
    assert "stage_config.sft.lerning_rate: unknown key 'lerning_rate' for stage sft (did you mean 'learning_rate'" in err


def test_missing_base_model_folder(workdir, cli, tmp_path):
    err = _bad(workdir, cli, tmp_path, lambda d: d["base_models"][1].update(model="models/nowhere"))
    assert "pipeline.yaml:6: base_models[1].model: " in err and "models/nowhere: no such checkpoint folder" in err


def test_stage_list_out_of_order_or_without_its_parent(workdir, cli, tmp_path):
    err = _bad(workdir, cli, tmp_path, lambda d: d.update(stages=["sft", "pt"]))
    assert "'pt' comes after 'sft'" in err
    err = _bad(workdir, cli, tmp_path / "b", lambda d: d.update(stages=["pt", "dpo"]))
    assert "stage 'dpo' needs its parent stage 'sft'" in err
    err = _bad(workdir, cli, tmp_path / "c", lambda d: d.update(stages=["sft", "ppo"]))
    assert "stage 'ppo' needs its parent stage 'rm'" in err


def test_bad_inline_gate_policy(workdir, cli, tmp_path):
    err = _bad(workdir, cli, tmp_path, lambda d: d.update(gate={"rules": {"*": {"*": {"max_dorp": 0}}}}))
    assert "gate: unknown key 'max_dorp'" in err


def test_missing_training_extra_is_named(cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    code, out, err = cli("demo", "--out", tmp_path / "d")
    assert code == 2 and err == 'aimed-eval: error: aimed-eval demo needs trl: pip install "aimed-eval[training,report]" ' \
                                '(or pip install -e ".[training,report]" in a checkout)\n'
    assert not (tmp_path / "d").exists()
