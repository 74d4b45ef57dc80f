"""``aimed-eval train``: defaults < YAML < flags, and bad input as one line, exit 2, no
traceback, nothing written (no stage folder, no manifest)."""

import json

import pytest
from stage_helpers import PREFERENCE, SFT, write_jsonl

from aimed.trainers import load_stage_config


def _bad(cli, out, *argv):
    code, stdout, err = cli("train", *argv, "--output_dir", out)
    assert code == 2, (stdout, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("aimed-eval: error: "), err
    assert "Traceback" not in err + stdout
    assert not out.exists()  # nothing half-written, no manifest anywhere
    return err


def test_yaml_then_flags_override_the_defaults(tmp_path):
    yaml = tmp_path / "sft.yaml"
    yaml.write_text("model: some/model\nlearning_rate: 0.001\nmax_steps: 20\ntrain_files: [a.jsonl, b.json]\n"
                    "eval_tasks: demo_mcq\nlora_dropout: 0\n", encoding="utf-8")
    c = load_stage_config("sft", yaml, {"max_steps": "7", "eval_tasks": "", "max_samples": "none"})
    assert (c.learning_rate, c.max_steps, c.train_files, c.eval_tasks) == (0.001, 7, ["a.jsonl", "b.json"], [])
    assert c.template_name == "vicuna" and c.lora_r == 8 and c.max_samples is None and c.lora_dropout == 0.0


def test_unknown_yaml_key_is_named_with_its_file(cli, tmp_path, tiny_llama):
    yaml = tmp_path / "sft.yaml"
    yaml.write_text(f"model: {tiny_llama}\nlearning_rat: 0.001\n", encoding="utf-8")
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--config", yaml)
    assert f"{yaml}: key 'learning_rat'" in err and "did you mean 'learning_rate'" in err


def test_unknown_flag_and_bad_values(cli, tmp_path, tiny_llama):
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--max_step", "5")
    assert "--max_step: unknown config key 'max_step'" in err and "did you mean 'max_steps'" in err
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--max_steps", "five")
    assert "'five' is not a int (key 'max_steps')" in err
    err = _bad(cli, tmp_path / "out", "--stage", "sfft", "--model", tiny_llama)
    assert "unknown stage" in err and "did you mean 'sft'" in err
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--finetune", "qlora",
               "--only_cpu", "true", "--train_tasks", "demo_mcq")
    assert "finetune qlora: needs a CUDA GPU" in err


def test_a_stage_without_its_parent_checkpoint(cli, tmp_path):
    missing = tmp_path / "runs" / "sft" / "checkpoint-100"
    err = _bad(cli, tmp_path / "out", "--stage", "dpo", "--model", missing, "--train_files", "x.jsonl")
    assert f"model {missing}: no such checkpoint folder; train the parent stage first" in err


@pytest.mark.parametrize("stage", ["rm", "dpo"])
def test_preference_file_missing_a_field_names_file_line_field(cli, tmp_path, tiny_llama, stage):
    rows = [dict(r) for r in PREFERENCE[:3]]
    del rows[1]["response_rejected"]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    err = _bad(cli, tmp_path / "out", "--stage", stage, "--model", tiny_llama, "--train_files", data)
    assert f"{data}:2: missing field 'response_rejected'" in err
    conv = tmp_path / "conv.jsonl"
    conv.write_text(json.dumps({"conversations": [{"from": "human", "value": "问"}], "chosen": "好"},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    err = _bad(cli, tmp_path / "out", "--stage", stage, "--model", tiny_llama, "--train_files", conv)
    assert f"{conv}:1: missing field 'rejected'" in err


@pytest.mark.parametrize("stage,name", [("pt", "empty.txt"), ("sft", "empty.jsonl"), ("rm", "empty.jsonl"),
                                        ("dpo", "empty.json")])
def test_an_empty_dataset(cli, tmp_path, tiny_llama, stage, name):
    empty = tmp_path / name
    empty.write_text("\n", encoding="utf-8")
    err = _bad(cli, tmp_path / "out", "--stage", stage, "--model", tiny_llama, "--train_files", empty)
    assert str(empty) in err and "empty file" in err


def test_sft_file_in_an_unknown_format(cli, tmp_path, tiny_llama):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"q": "发热怎么办？", "a": "多喝水。"}])
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--train_files", data)
    assert f"{data}:1: unknown SFT format (keys a, q)" in err


def test_a_record_missing_its_response_and_a_missing_file(cli, tmp_path, tiny_llama):
    rows = [dict(SFT[0]), {"instruction": "只有问题"}]
    data = write_jsonl(tmp_path / "sft.jsonl", rows)
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--train_files", data)
    assert f"{data}:2: missing field 'output'" in err
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--train_files", tmp_path / "nope.jsonl")
    assert "nope.jsonl: no such file" in err


def test_cli_trains_and_prints_checkpoints_and_scores(cli, tmp_path, tiny_llama):
    yaml = tmp_path / "sft.yaml"
    yaml.write_text(f"model: {tiny_llama}\ntrain_tasks: [demo_mcq]\nmax_steps: 2\nsave_steps: 1\n"
                    f"max_length: 256\neval_tasks: [demo_mcq]\neval_limit: 4\neval_db: {tmp_path / 'idx.sqlite'}\n",
                    encoding="utf-8")
    code, out, err = cli("train", "--stage", "sft", "--config", yaml, "--output_dir", tmp_path / "sft",
                         "--only_cpu=true")
    assert code == 0, err
    assert "stage sft done: 2 checkpoint(s)" in out
    assert f"{tmp_path / 'sft' / 'checkpoint-2'}  demo_mcq/acc=" in out
    assert "{'loss'" in out + err  # print_logs: the trainer's log lines, unless it is turned off
    code, out, err = cli("train", "--stage", "sft", "--config", yaml, "--output_dir", tmp_path / "quiet",
                         "--only_cpu=true", "--print_logs=false")
    assert code == 0 and "{'loss'" not in out + err and "stage sft done: 2 checkpoint(s)" in out
    # refusing to overwrite a finished stage without overwrite: true
    code, _, err = cli("train", "--stage", "sft", "--config", yaml, "--output_dir", tmp_path / "sft")
    assert code == 2 and "set overwrite: true to replace it" in err


def test_eval_tasks_without_their_data_fail_before_training(cli, tmp_path, tiny_llama, monkeypatch):
    monkeypatch.setenv("AIMED_DATA", str(tmp_path / "no-data"))
    err = _bad(cli, tmp_path / "out", "--stage", "sft", "--model", tiny_llama, "--train_tasks", "demo_mcq",
               "--eval_tasks", "cmexam")
    assert "task 'cmexam': data file" in err and "not found" in err


def test_a_stage_added_by_an_entry_point(cli, tmp_path, tiny_llama, monkeypatch):
    from importlib.metadata import EntryPoint

    from aimed.trainers import stages

    found = stages.entry_points
    plugin = EntryPoint(name="mcq-sft", value="stage_plugin_example", group=stages.GROUP)
    monkeypatch.setattr(stages, "entry_points", lambda group: [*found(group=group), plugin])
    assert "mcq-sft" in stages.stage_names()
    code, out, err = cli("train", "--stage", "mcq-sft", "--model", tiny_llama, "--task", "demo_mcq", "--max_steps", "1",
                         "--max_length", "256", "--eval_tasks", "", "--output_dir", tmp_path / "out")
    assert code == 0, err
    manifest = json.loads((tmp_path / "out" / "checkpoint-1" / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "mcq-sft" and manifest["config"]["task"] == "demo_mcq"
