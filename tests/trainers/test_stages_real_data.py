"""The stages on the real training files of AIMED_DATA, a few steps each: pt on
train/pretrain/fever.txt, sft on both SFT files, rm and dpo on both preference files.
Files are named relative to AIMED_DATA, as a user's config would."""

import hashlib
import json
import math

import pytest
from stage_helpers import train

PT = "train/pretrain/fever.txt"
SFT = ["train/sft/huatuo_llama_data.json", "train/sft/medical_sft_1K_format.jsonl"]
PREF = ["train/preference/medical_reward_test.json", "train/preference/dpo_zh_500.jsonl"]


def _manifest(folder):
    return json.loads((folder / "aimed_checkpoint.json").read_text(encoding="utf-8"))


def _check_data(manifest, data_dir, names, per_file):
    got = {d["path"]: d for d in manifest["train_data"]}
    assert len(got) == len(names)
    for name in names:
        path = data_dir / name
        entry = got[str(path.resolve())]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["examples"] == per_file


def test_pt_on_fever_txt(tiny_llama, tmp_path, data_dir):
    result = train("pt", tiny_llama, tmp_path / "pt", train_files=[PT], max_samples=40, finetune="full",
                   learning_rate=3e-3, max_length=64, max_steps=4)
    m = result.train_metrics
    print("real pt loss", m["first_loss"], "->", m["last_loss"], "blocks", m["examples"])
    assert m["last_loss"] < m["first_loss"]  # from near-uniform (ln 1200 = 7.09) to the text's statistics
    _check_data(_manifest(result.final), data_dir, [PT], 40)


def test_sft_on_both_sft_files(tiny_llama, tmp_path, data_dir):
    result = train("sft", tiny_llama, tmp_path / "sft", train_files=SFT, max_samples=8, learning_rate=1e-2,
                   max_length=128, max_steps=4, template_name="chatglm2")
    m = result.train_metrics
    print("real sft loss", m["first_loss"], "->", m["last_loss"], "examples", m["examples"])
    assert m["examples"] == 16 and m["last_loss"] < m["first_loss"]
    _check_data(_manifest(result.final), data_dir, SFT, 8)


@pytest.mark.parametrize("stage", ["rm", "dpo"])
def test_preference_stages_on_both_preference_files(tiny_llama, tmp_path, data_dir, stage):
    extra = {"eval_fraction": 0.25} if stage == "rm" else {}
    result = train(stage, tiny_llama, tmp_path / stage, train_files=PREF, max_samples=6, learning_rate=5e-3,
                   max_length=128, max_steps=3, template_name="chatglm2", **extra)
    m = result.train_metrics
    print(f"real {stage}", {k: round(v, 4) for k, v in m.items()})
    assert m["steps"] == 3 and math.isfinite(m["last_loss"])
    assert m["pairs"] == (9 if stage == "rm" else 12)  # rm holds a quarter out to score its checkpoints
    manifest = _manifest(result.final)
    _check_data(manifest, data_dir, PREF, 6)
    assert manifest["stage"] == stage
    if stage == "rm":
        assert set(result.scores[result.final]) == {"pair_accuracy", "margin"}
        assert manifest["eval"] == result.scores[result.final]
