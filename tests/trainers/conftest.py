"""Fixtures of the RL stage tests (ppo, rloo, grpo): a tiny SFT checkpoint and a reward
model trained from it by the real sft and rm stages."""

import pytest

from aimed.trainers.stages import load_stage_config, train_stage

PROMPTS = "train/sft/huatuo_llama_data.json"


@pytest.fixture(scope="session")
def sft_and_rm(tiny_llama, data_dir, tmp_path_factory):
    """A tiny SFT checkpoint and a reward model trained from it (both LoRA adapters, a few steps)."""
    root = tmp_path_factory.mktemp("rlhf")
    sft = train_stage("sft", load_stage_config("sft", overrides=dict(
        model=str(tiny_llama), output_dir=str(root / "sft"), train_files=PROMPTS, max_samples=8, max_steps=2,
        max_length=128, template_name="chatglm2", eval_tasks="", only_cpu=True)))
    rm = train_stage("rm", load_stage_config("rm", overrides=dict(
        model=str(sft.final), output_dir=str(root / "rm"), train_files="train/preference/medical_reward_test.json",
        max_samples=16, max_steps=3, max_length=128, template_name="chatglm2", only_cpu=True)))
    return sft.final, rm.final, root
