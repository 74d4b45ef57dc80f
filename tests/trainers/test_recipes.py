"""Each stage declares its place in the recipe (``RECIPE``), and the pipeline reads nothing
else; the typed state file reads (and upgrades) what an older aimed-eval wrote."""

import json
import shutil
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from aimed.harness.errors import UserError
from aimed.harness.verdicts import (SCHEMA_VERSION, DecisionKind, LineStatus, RecordStatus, StageVerdict,
                                    parse_state, read_state)
from aimed.trainers import stages
from aimed.trainers.base import StageRecipe
from aimed.trainers.pipeline_config import check_stages

V1 = Path(__file__).parent / "data" / "pipeline_state_v1.json"  # as the pipeline wrote it before schema_version


def test_every_registered_stage_declares_its_recipe():
    recipes = stages.stage_recipes()
    assert set(recipes) == {"pt", "sft", "rm", "ppo", "rloo", "grpo", "dpo"}
    assert stages.stage_names() == ["pt", "sft", "rm", "grpo", "ppo", "rloo", "dpo"]
    assert [n for n, r in recipes.items() if r.side] == ["rm"]
    assert {n for n, r in recipes.items() if r.needs_reward_model} == {"ppo", "rloo", "grpo"}
    assert recipes["dpo"].needs == ("sft",) and recipes["ppo"].needs == ("sft", "rm")
    assert all(r.rank_by == "suite/score" for n, r in recipes.items() if not r.side)


def _plugin(monkeypatch, recipe=True):
    import stage_plugin_example

    found = stages.entry_points
    plugin = EntryPoint(name="mcq-sft", value="stage_plugin_example", group=stages.GROUP)
    monkeypatch.setattr(stages, "entry_points", lambda group: [*found(group=group), plugin])
    if not recipe:
        monkeypatch.delattr(stage_plugin_example, "RECIPE")


def test_a_plugin_stage_takes_its_place(monkeypatch):
    _plugin(monkeypatch)
    recipes = stages.stage_recipes()
    assert list(recipes)[:3] == ["pt", "mcq-sft", "sft"]  # order 1, beside sft, by name
    check_stages(["pt", "mcq-sft", "sft", "dpo"], recipes, "p.yaml: stages", lambda s: False)
    with pytest.raises(UserError, match="'mcq-sft' comes after 'dpo'"):
        check_stages(["dpo", "mcq-sft"], recipes, "p.yaml: stages", lambda s: False)


def test_a_stage_without_a_recipe_is_named_not_guessed(monkeypatch):
    _plugin(monkeypatch, recipe=False)
    assert stages.stage_names()[-1] == "mcq-sft" and "mcq-sft" not in stages.stage_recipes()
    with pytest.raises(UserError, match=r"stage mcq-sft \(stage_plugin_example\): declares no RECIPE.*"
                                        r"add RECIPE = StageRecipe\(order=\.\.\.\)"):
        stages.stage_recipe("mcq-sft")
    with pytest.raises(UserError, match="unknown stage"):
        stages.stage_recipe("orpo")


def test_reward_model_given_in_the_file_stands_for_rm():
    recipes = stages.stage_recipes()
    check_stages(["sft", "ppo"], recipes, "w", lambda s: s == "ppo")
    with pytest.raises(UserError, match=r"'ppo' needs its parent stage 'rm' before it \(or set "
                                        r"stage_config.ppo.reward_model\)"):
        check_stages(["sft", "ppo"], recipes, "w", lambda s: False)
    with pytest.raises(UserError, match="'dpo' needs its parent stage 'sft'"):
        check_stages(["pt", "dpo"], recipes, "w", lambda s: True)
    assert StageRecipe(order=9).needs == () and not StageRecipe(order=9).side


def test_a_version_1_state_file_is_upgraded():
    state = read_state(V1, str(V1), "fix it")
    assert state.schema_version == SCHEMA_VERSION == 2
    slow, rl, bad = state.lines["slow"], state.lines["rl"], state.lines["bad"]
    assert (slow.status, rl.status, bad.status) == (LineStatus.STOPPED, LineStatus.RUNNING, LineStatus.ERROR)
    assert slow.status.words == "stopped by the gate" and bad.status.words == "failed"
    sft = slow.stages["sft"]
    assert sft.status == RecordStatus.DONE and sft.decision.verdict == StageVerdict.NOT_PROMOTED
    assert sft.decision.failures[0].metric == "rougeL" and sft.decision.checks[0].promotion == "not met"
    assert [c.passed for c in sft.checkpoints] == [False, True]
    rm = rl.stages["rm"].decision
    assert rm.kind == DecisionKind.SIDE and rm.verdict == "reward model"
    assert rm.candidate == rm.promoted_checkpoint  # version 1 wrote no candidate for a side stage
    assert rl.stages["ppo"].decision is None and rl.current.stage == "sft"
    # written back: the current layout, which reads back the same
    data = json.loads(state.to_json())
    assert data["schema_version"] == 2 and "format" not in data
    assert parse_state(data, "again", "fix it") == state
    assert "scores" not in data["lines"]["slow"]["stages"]["sft"]["checkpoints"][0]
    assert data["lines"]["rl"]["stages"]["rm"]["checkpoints"][0]["scores"] == {"pair_accuracy": 0.75}


def test_the_pipeline_resumes_from_a_version_1_file(tmp_path):
    from aimed.trainers.pipeline_state import PipelineState

    path = tmp_path / "pipeline_state.json"
    shutil.copyfile(V1, path)
    state = PipelineState.open(path, tmp_path / "pipeline.yaml", tmp_path / "i.sqlite", ["pt", "sft"])
    assert state.stage(state.line("slow", "m"), "pt").decision.go_on
    state.save()
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["schema_version"] == 2 and written["stages"] == ["pt", "sft"]
    assert written["lines"]["slow"]["model"] == "m"


def test_the_report_reads_a_version_1_file():
    from aimed.reports import pipeline as pl

    state = pl.load_state(V1)
    assert state["schema_version"] == 2 and state["_path"] == str(V1)
    rows = pl.stage_rows(state["lines"]["slow"])
    assert [r[pl.VERDICT_COLUMN] for r in rows] == ["promoted", "not promoted"]
    assert pl.line_title("bad", state["lines"]["bad"]) == "bad: failed — train_files: nope.jsonl: no such file"
    assert pl.stage_rows(state["lines"]["rl"])[1][pl.VERDICT_COLUMN] == "interrupted"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=3), "written by a newer aimed-eval (schema_version 3"),
    (lambda d: d.pop("format"), "not a pipeline state file (no schema_version)"),
    (lambda d: d["lines"]["slow"].update(status="paused"), "line status 'paused' is not one of pending"),
    (lambda d: d["lines"]["slow"]["stages"]["sft"]["decision"].update(verdict="ok"), "verdict 'ok' is not one of"),
    (lambda d: d.update(lines=[]), "no 'lines'"),
])
def test_a_bad_state_file_is_one_line(change, message):
    data = json.loads(V1.read_text(encoding="utf-8"))
    change(data)
    with pytest.raises(UserError) as err:
        parse_state(data, "s.json", "remove it")
    assert message in err.value.message and err.value.message.startswith("s.json: ")
    assert "\n" not in err.value.message
