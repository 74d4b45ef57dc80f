"""The pipeline checks each stage's training data against the eval tasks before training.

The demo's SFT file holds the demo questions themselves (it is made to, so the tiny model
learns them); its pretraining text holds some term definitions. A gate that allows no
more than three eval items in the data stops SFT before it trains; the PT stage, judged
``on: clean``, is compared over the items its data does not contain.
"""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aimed.harness.tinymodel import build_tiny_model
from aimed.trainers import stages as stages_mod
from aimed.trainers.demo_cmd import demo_texts

DEMO_DATA = Path(__file__).resolve().parents[2] / "trainers" / "demo_data"
PIPELINE = {
    "output_root": "out",
    "base_models": [{"name": "tiny", "model": "models/tiny"}],
    "stages": ["pt", "sft"],
    "defaults": {"finetune": "full", "dtype": "float32", "only_cpu": True, "template_name": "raw", "seed": 0},
    "stage_config": {
        "pt": {"train_files": ["pretrain.txt"], "max_length": 64, "learning_rate": 1.0e-4, "max_steps": 2,
               "save_steps": 2, "per_device_train_batch_size": 8},
        "sft": {"train_files": ["sft.jsonl"], "max_length": 160, "learning_rate": 5.0e-3, "max_steps": 4,
                "save_steps": 4, "per_device_train_batch_size": 16}},
    "eval": {"tasks": ["demo"]},
    "stage_gates": {
        "pt": {"on": "clean", "rules": {"*": {"*": {"max_drop": 1.0}}}},
        "sft": {"max_contaminated": 3, "rules": {"*": {"*": {"max_drop": 1.0}}}},
    },
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    from aimed.harness.cli import main

    root = tmp_path_factory.mktemp("contam-pipeline")
    for name in ("pretrain.txt", "sft.jsonl", "preference.jsonl"):  # demo_texts reads all three
        shutil.copyfile(DEMO_DATA / name, root / name)
    build_tiny_model(root / "models" / "tiny", demo_texts(root), arch="llama", seed=0, max_positions=512)
    (root / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE, allow_unicode=True, sort_keys=False),
                                        encoding="utf-8")
    trained = []
    real = stages_mod.train_stage
    mp = pytest.MonkeyPatch()
    mp.setattr(stages_mod, "train_stage", lambda stage, config: trained.append(stage) or real(stage, config))
    try:
        code = main(["pipeline", "--config", str(root / "pipeline.yaml")])
    finally:
        mp.undo()
    state = json.loads((root / "out" / "pipeline_state.json").read_text(encoding="utf-8"))
    return {"code": code, "trained": trained, "state": state, "root": root}


def test_contaminated_sft_is_stopped_before_training(outcome):
    assert outcome["code"] == 1  # a gate stopped the line
    assert outcome["trained"] == ["pt"]  # SFT never trained
    line = outcome["state"]["lines"]["tiny"]
    sft = line["stages"]["sft"]
    check = sft["data_check"]
    assert check["flagged"] == {"demo_mcq": 24, "demo_medterm": 16}  # every demo item: the SFT file holds them
    assert check["checked"] == {"demo_mcq": 24, "demo_medterm": 16}
    from aimed.harness.contamination import DEFAULT_N

    assert check["max_contaminated"] == 3 and check["ngram"] == DEFAULT_N["char"]
    assert [Path(f).name for f in check["files"]] == ["pretrain.txt", "sft.jsonl"]  # the line's data so far
    assert sft["decision"]["verdict"] == "failed" and not sft["decision"]["go_on"]
    assert sft["decision"]["summary"].startswith("not trained: its training data holds 40 eval items")
    assert line["status"] == "stopped" and not sft["checkpoints"]


def test_pt_judged_on_its_clean_subset(outcome):
    pt = outcome["state"]["lines"]["tiny"]["stages"]["pt"]
    flagged = pt["data_check"]["flagged"]
    assert flagged["demo_mcq"] >= 1 and flagged["demo_medterm"] >= 1  # the text defines some demo terms
    run = Path(pt["checkpoints"][0]["run_dir"])
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    recs = [json.loads(x) for x in (run / "samples_demo_mcq.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum(r["contamination"]["flagged"] for r in recs) == flagged["demo_mcq"]
    assert results["aimed"]["scored"]["demo_mcq"]["acc_clean"] == 24 - flagged["demo_mcq"]
    acc = next(c for c in pt["decision"]["checks"] if (c["task"], c["metric"]) == ("demo_mcq", "acc"))
    verdict = json.loads(Path(pt["decision"]["verdict_file"]).read_text(encoding="utf-8"))
    judged = next(c for v in verdict["verdicts"] for c in v["checks"] if (c["task"], c["metric"]) == ("demo_mcq", "acc"))
    assert judged["n"] == 24 - flagged["demo_mcq"]  # the items the PT data does not hold
    assert acc["status"] == "pass"


def test_report_shows_the_data_check(outcome, cli, tmp_path):
    root = outcome["root"]
    code, _, err = cli("report", "--db", root / "out" / "aimed_index.sqlite", "--format", "markdown",
                       "--out", tmp_path / "r.md")
    assert code == 0, err
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert "eval items in its training data" in text
    assert "40 of 40 eval items in the training data (demo_mcq 24, demo_medterm 16); max_contaminated 3" in text
    assert "## Robustness" in text and "acc_clean" not in text.split("## Robustness")[0]


def test_html_report_has_the_robustness_section(outcome, cli, tmp_path):
    root = outcome["root"]
    code, _, err = cli("report", "--db", root / "out" / "aimed_index.sqlite", "--out", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'href="#robustness"' in html and "Robustness: option order and training data" in html
    assert "40 of 40 eval items in the training data" in html
