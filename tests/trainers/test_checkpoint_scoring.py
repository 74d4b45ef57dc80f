"""Every checkpoint a stage saves gets its manifest and is scored at once, its run recorded
in the results index with its lineage; a failing evaluation warns and training goes on; a
stage that dies mid-way marks nothing it did not finish."""

import json
import sqlite3

import pytest
from stage_helpers import PREFERENCE, train, write_jsonl

from aimed.harness.errors import UserError
from aimed.harness.manifest import MANIFEST


@pytest.fixture(scope="module")
def lineage(tiny_llama, tmp_path_factory):
    """sft (2 checkpoints, LoRA) from the tiny base, then dpo (2 checkpoints) from sft's last."""
    root = tmp_path_factory.mktemp("lineage")
    db = root / "index.sqlite"
    sft = train("sft", tiny_llama, root / "sft", train_tasks=["demo_mcq"], max_steps=4, save_steps=2,
                learning_rate=1e-2, max_length=256, eval_tasks=["demo_mcq"], eval_limit=8, eval_db=str(db))
    data = write_jsonl(root / "pairs.jsonl", PREFERENCE)
    dpo = train("dpo", sft.final, root / "dpo", train_files=[str(data)], max_steps=4, save_steps=2,
                learning_rate=1e-2, max_length=256, eval_tasks=["demo_mcq"], eval_limit=8, eval_db=str(db))
    return {"root": root, "db": db, "sft": sft, "dpo": dpo, "base": tiny_llama.resolve()}


def _runs(db):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT run_dir, checkpoint, base_model, stage, parent, step, adapter FROM runs "
                       "ORDER BY stage DESC, step").fetchall()
    scores = {r[0]: r[1] for r in con.execute("SELECT runs.run_dir, value FROM scores JOIN runs USING (run_id) "
                                              "WHERE task='demo_mcq' AND metric='acc'")}
    con.close()
    return rows, scores


def test_every_checkpoint_has_a_manifest_with_its_lineage(lineage):
    sft, dpo, base = lineage["sft"], lineage["dpo"], lineage["base"]
    assert [c.name for c in sft.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    assert [c.name for c in dpo.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    for stage, result, parent in (("sft", sft, str(base)), ("dpo", dpo, str(sft.final))):
        for step, ckpt in zip((2, 4), result.checkpoints):
            m = json.loads((ckpt / MANIFEST).read_text(encoding="utf-8"))
            assert (m["stage"], m["step"], m["parent"], m["base_model"]) == (stage, step, parent, "tiny-llama")
            assert m["adapter"] is True and m["config"]["finetune"] == "lora"
            assert m["versions"]["trl"] and m["versions"]["peft"] and m["versions"]["torch"]
    # a LoRA parent is merged once, and the dpo adapters apply on that merge
    merged = lineage["root"] / "dpo" / "parent-merged"
    assert json.loads((dpo.final / MANIFEST).read_text(encoding="utf-8"))["base_folder"] == str(merged.resolve())
    assert json.loads((merged / MANIFEST).read_text(encoding="utf-8"))["parent"] == str(sft.final)
    sft_data = json.loads((sft.final / MANIFEST).read_text(encoding="utf-8"))["train_data"]
    assert sft_data[0]["task"] == "demo_mcq" and len(sft_data[0]["sha256"]) == 16
    # the stage marker, written last, lists them
    marker = json.loads((lineage["root"] / "sft" / "aimed_stage.json").read_text(encoding="utf-8"))
    assert marker["final"] == str(sft.final) and len(marker["checkpoints"]) == 2


def test_every_checkpoint_is_scored_and_indexed_with_lineage(lineage):
    rows, scores = _runs(lineage["db"])
    sft, dpo, base = lineage["sft"], lineage["dpo"], lineage["base"]
    got = [(stage, step, parent, base_model, adapter) for _, _, base_model, stage, parent, step, adapter in rows]
    assert got == [
        ("sft", 2, str(base), "tiny-llama", str(sft.checkpoints[0])),
        ("sft", 4, str(base), "tiny-llama", str(sft.checkpoints[1])),
        ("dpo", 2, str(sft.final), "tiny-llama", str(dpo.checkpoints[0])),
        ("dpo", 4, str(sft.final), "tiny-llama", str(dpo.checkpoints[1])),
    ]
    for result in (sft, dpo):
        for ckpt in result.checkpoints:
            run_dir = result.eval_runs[ckpt]
            assert run_dir is not None and (run_dir / "results.json").exists()
            acc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))["results"]["demo_mcq"]["acc,none"]
            assert scores[str(run_dir.resolve())] == acc == result.scores[ckpt]["demo_mcq/acc"]


def test_leaderboard_shows_the_stages(lineage, cli):
    code, out, err = cli("leaderboard", "--db", lineage["db"], "--format", "json")
    assert code == 0, err
    rows = json.loads(out)
    text = json.dumps(rows, ensure_ascii=False)
    assert "sft" in text and "dpo" in text and "tiny-llama" in text


def test_a_failing_evaluation_warns_and_training_goes_on(tiny_llama, tmp_path, capsys):
    not_an_index = tmp_path / "index.sqlite"
    not_an_index.write_text("not a database\n", encoding="utf-8")
    result = train("sft", tiny_llama, tmp_path / "sft", train_tasks=["demo_mcq"], max_steps=4, save_steps=2,
                   max_length=256, eval_tasks=["demo_mcq"], eval_limit=4, eval_db=str(not_an_index))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("aimed-eval: warning:")]
    assert len(warnings) == 2, err
    assert "checkpoint-2: scoring on demo_mcq failed (UserError:" in warnings[0]
    assert "training goes on" in warnings[0]
    assert [c.name for c in result.checkpoints] == ["checkpoint-2", "checkpoint-4"]
    assert result.eval_runs == {c: None for c in result.checkpoints}
    assert all((c / MANIFEST).exists() for c in result.checkpoints)


def test_a_stage_that_dies_mid_way_marks_only_finished_checkpoints(tiny_llama, tmp_path, monkeypatch):
    from transformers import Trainer

    original = Trainer._save_checkpoint

    def save_then_fail(self, model, trial):
        if self.state.global_step == 4:  # the disk fills while the second checkpoint is written
            folder = tmp_path / "sft" / "checkpoint-4"
            folder.mkdir()
            (folder / "adapter_config.json").write_text("{", encoding="utf-8")
            raise OSError("No space left on device")
        return original(self, model, trial)

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_fail)
    with pytest.raises(UserError, match="No space left on device"):  # one line for the user, not a traceback
        train("sft", tiny_llama, tmp_path / "sft", train_tasks=["demo_mcq"], max_steps=6, save_steps=2,
              max_length=256)
    out = tmp_path / "sft"
    assert (out / "checkpoint-2" / MANIFEST).exists()
    assert not (out / "checkpoint-4").exists()  # the unfinished one is removed, so nothing reads it
    assert not (out / "aimed_stage.json").exists()


def test_a_full_weights_checkpoint_is_scored_as_itself(tiny_llama, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("高血压患者应当低盐饮食，规律服药，定期监测血压。\n" * 8, encoding="utf-8")
    db = tmp_path / "index.sqlite"
    result = train("pt", tiny_llama, tmp_path / "pt", train_files=[str(text)], finetune="full", max_steps=1,
                   max_length=32, eval_tasks=["demo_mcq"], eval_limit=4, eval_db=str(db), base_model="my-base")
    (row,), _ = _runs(db)
    run_dir, checkpoint, base_model, stage, parent, step, adapter = row
    assert (base_model, stage, parent, step, adapter) == ("my-base", "pt", str(tiny_llama.resolve()), 1, None)
    assert checkpoint == "pt/checkpoint-1" and run_dir == str(result.eval_runs[result.final].resolve())
    results = json.loads((result.eval_runs[result.final] / "results.json").read_text(encoding="utf-8"))
    assert results["aimed"]["model"]["folder"] == str(result.final)
    assert results["aimed"]["model"]["manifest"]["stage"] == "pt"
