"""rloo and grpo (trl's RLOOTrainer / GRPOTrainer as stages): a few steps on a tiny model,
with a Python reward and with an rm checkpoint, checkpoints with manifests."""

import json

import pytest

from aimed.trainers import grpo, rloo
from aimed.trainers.stages import load_stage_config, train_stage

PROMPTS = "train/sft/huatuo_llama_data.json"


def ascii_share(prompts, responses):
    return [sum(c.isascii() for c in r) / max(len(r), 1) for r in responses]


@pytest.mark.parametrize("module", [rloo, grpo], ids=["rloo", "grpo"])
def test_runs_a_few_steps_with_a_python_reward(module, tiny_llama, data_dir, tmp_path):
    out = tmp_path / module.NAME
    config = module.Config(model=str(tiny_llama), output_dir=str(out), train_files=[PROMPTS], max_samples=8,
                           template_name="raw", finetune="lora", learning_rate=1e-3, max_steps=2, save_steps=1,
                           per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                           max_length=48, eval_tasks=[], only_cpu=True, seed=0)
    result = module.train(config, reward_fn=ascii_share)
    assert [c.name for c in result.checkpoints] == ["checkpoint-1", "checkpoint-2"]
    assert 0 <= result.train_metrics["first_reward"] <= 1 and result.train_metrics["steps"] == 2
    manifest = json.loads((result.final / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == module.NAME and manifest["adapter"] is True and manifest["step"] == 2
    assert (result.final / "adapter_config.json").exists()


@pytest.mark.parametrize("stage", ["rloo", "grpo"])
def test_runs_from_sft_with_the_reward_model_through_the_cli(stage, sft_and_rm, cli, tmp_path):
    sft, rm, _ = sft_and_rm
    out = tmp_path / stage
    code, stdout, err = cli("train", "--stage", stage, "--model", sft, "--reward_model", rm, "--output_dir", out,
                            "--train_files", "train/preference/dpo_zh_500.jsonl", "--max_samples", "4",
                            "--template_name", "chatglm2", "--max_steps", "2", "--save_steps", "2",
                            "--per_device_train_batch_size", "4", "--num_generations", "2",
                            "--max_completion_length", "8", "--max_length", "128", "--eval_tasks", "", "--only_cpu",
                            "true")
    assert code == 0, err
    manifest = json.loads((out / "checkpoint-2" / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == stage and manifest["parent"] == str(sft)
    assert manifest["config"]["reward_model"] == str(rm)
    assert "first_reward" in stdout and "final checkpoint" in stdout


@pytest.mark.parametrize("stage", ["rloo", "grpo"])
@pytest.mark.parametrize("change, message", [
    ({}, "reward_model: give the reward model checkpoint"),
    ({"reward_model": "nowhere/rm-x"}, "no such folder; train the rm stage first"),
    ({"reward_model": "{rm}", "num_generations": "3"}, "must be a multiple of num_generations 3"),
])
def test_bad_input(stage, change, message, sft_and_rm, cli, tmp_path):
    sft, rm, _ = sft_and_rm
    flags = {"model": str(sft), "train_files": PROMPTS, "output_dir": str(tmp_path / "out"),
             "per_device_train_batch_size": "4", "num_generations": "2", "only_cpu": "true"}
    flags.update({k: v.format(rm=rm) for k, v in change.items()})
    code, _, err = cli("train", "--stage", stage, *[x for k, v in flags.items() for x in (f"--{k}", v)])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()
