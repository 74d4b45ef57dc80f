"""The ppo stage end to end on tiny models: it raises a learnable reward, runs from an SFT
checkpoint with a reward-model checkpoint (checkpoints with manifests, scored and indexed),
and refuses bad input in one line."""

import json
import sqlite3
import time
from pathlib import Path

import pytest

from aimed.trainers import ppo
from aimed.trainers.stages import load_stage_config, train_stage

PROMPTS = "train/sft/huatuo_llama_data.json"


def ascii_share(prompts, responses):
    """The toy reward: the share of a response's characters that are ASCII. A random tiny
    Llama writes about 15% ASCII (its vocabulary is mostly Chinese), so it has room to learn."""
    return [sum(c.isascii() for c in r) / max(len(r), 1) for r in responses]


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / ppo.LOG_FILE).read_text(encoding="utf-8").splitlines()]


def test_ppo_raises_the_mean_reward(tiny_llama, data_dir, tmp_path):
    out = tmp_path / "ppo"
    # Full fine-tuning: on a random model the reward needs the output layer, which LoRA leaves frozen.
    config = ppo.Config(model=str(tiny_llama), output_dir=str(out), train_files=[PROMPTS], max_samples=64,
                        max_length=40, template_name="raw", finetune="full", learning_rate=3e-3,
                        lr_scheduler_type="constant", max_steps=30, save_steps=30, rollout_batch_size=32,
                        per_device_train_batch_size=16, response_length=6, kl_coef=0.01, eval_tasks=["demo_mcq"],
                        eval_limit=4, eval_db=str(tmp_path / "index.sqlite"), seed=0, only_cpu=True)
    start = time.time()
    result = ppo.train(config, reward_fn=ascii_share)
    wall = time.time() - start
    rewards = [row["reward"] for row in read_log(out)]
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(f"\nppo toy reward (ASCII share): first 5 iterations {first:.3f}, last 5 {last:.3f}, "
          f"{len(rewards)} iterations in {wall:.1f} s")
    assert len(rewards) == 30
    assert first < 0.3
    print([round(r, 2) for r in rewards])
    assert last > first + 0.3, rewards
    assert result.train_metrics["last_reward"] > result.train_metrics["first_reward"]
    assert result.train_metrics["last_kl"] > 0  # it moved away from the reference to get there
    assert [c.name for c in result.checkpoints] == ["checkpoint-30"]
    manifest = json.loads((out / "checkpoint-30" / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["stage"] == "ppo" and manifest["kind"] == "merged" and manifest["step"] == 30
    assert result.eval_runs[result.final] is not None  # full weights + value head file: the harness scores it


def test_ppo_from_sft_with_the_reward_model(sft_and_rm, tmp_path):
    sft, rm, root = sft_and_rm
    out, db = tmp_path / "ppo", tmp_path / "index.sqlite"
    config = load_stage_config("ppo", overrides=dict(
        model=str(sft), reward_model=str(rm), output_dir=str(out), eval_db=str(db),
        train_files="train/preference/dpo_zh_500.jsonl,train/sft/medical_sft_1K_format.jsonl", max_samples=4,
        max_steps=2, save_steps=1, rollout_batch_size=4, per_device_train_batch_size=2, ppo_epochs=2,
        response_length=8, max_length=128, template_name="chatglm2", learning_rate=1e-3, eval_tasks="demo_mcq",
        eval_limit=4, kl_coef=0.05, target_kl=1.0, kl_horizon=10, only_cpu=True))
    result = train_stage("ppo", config)
    assert [c.name for c in result.checkpoints] == ["checkpoint-1", "checkpoint-2"]
    rows = read_log(out)
    assert len(rows) == 2 and all(r["response_length"] >= 1 for r in rows)
    # adaptive KL: the first batch's KL is 0 (LoRA starts as the parent), under target 1 by more
    # than 20%, so the coefficient shrinks by 0.2 x 4 samples / horizon 10
    assert rows[0]["kl"] == 0.0 and rows[0]["kl_coef"] == 0.05
    assert rows[1]["kl_coef"] == pytest.approx(0.05 * (1 - 0.2 * 4 / 10))
    # the rewards come from the reward model (real-valued scores, not a fixed number)
    assert len({round(r["reward"], 6) for r in rows}) == 2
    for ckpt in result.checkpoints:
        manifest = json.loads((ckpt / "aimed_checkpoint.json").read_text(encoding="utf-8"))
        assert manifest["stage"] == "ppo" and manifest["parent"] == str(sft) and manifest["parent_stage"] == "sft"
        assert manifest["adapter"] is True and (ckpt / "adapter_config.json").exists()
        assert manifest["config"]["reward_model"] == str(rm)
        assert {d["examples"] for d in manifest["train_data"]} == {4}
        assert result.eval_runs[ckpt] is not None and (result.eval_runs[ckpt] / "results.json").exists()
        assert "demo_mcq/acc" in result.scores[ckpt]
    with sqlite3.connect(db) as con:  # both runs are in the results index, with their lineage
        rows = con.execute("select stage, step, parent from runs order by step").fetchall()
    assert [(stage, step) for stage, step, _ in rows] == [("ppo", 1), ("ppo", 2)]
    assert all(str(sft) in parent for _, _, parent in rows), rows


@pytest.mark.parametrize("change, message", [
    ({"reward_model": ""}, "reward_model: give the reward model checkpoint"),
    ({"reward_model": "{root}/no-such-rm"}, "no-such-rm: no such folder; train the rm stage first"),
    ({"reward_model": "{sft}"}, "a sft checkpoint, not a reward model"),
    ({"reward_model": "{base}"}, "not a reward model (no sequence-classification head)"),
    ({"model": "{root}/no-such-sft"}, "no-such-sft: no such checkpoint folder"),
    ({"kl_estimator": "k2"}, "kl_estimator 'k2': use k1 or k3"),
    ({"rewardmodel": "x"}, "unknown config key 'rewardmodel' (did you mean 'reward_model'"),
])
def test_bad_input_is_one_line_exit_2(sft_and_rm, tiny_llama, cli, tmp_path, change, message):
    sft, rm, root = sft_and_rm
    flags = {"model": str(sft), "reward_model": str(rm), "train_files": PROMPTS, "max_steps": "1",
             "output_dir": str(tmp_path / "out"), "eval_tasks": "", "only_cpu": "true"}
    flags.update({k: v.format(root=root, sft=sft, base=tiny_llama) for k, v in change.items()})
    argv = ["train", "--stage", "ppo"] + [x for k, v in flags.items() for x in (f"--{k}", v)]
    code, out, err = cli(*argv)
    assert code == 2, err
    assert err.startswith("aimed-eval: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing written, nothing half-done


def test_rollout_reference_eos_penalty_and_score_clip(tiny_llama):
    """At the start the policy is its reference (LoRA off = the parent): KL 0. A response cut
    at response_length without EOS loses missing_eos_penalty; scores are then clipped."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aimed.trainers.ppo_core import RunningMoments
    from aimed.trainers.ppo_model import PolicyWithValue
    from aimed.trainers.ppo_rollout import RolloutSettings, collect

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_llama)
    lm = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, target_modules="all-linear"))
    policy = PolicyWithValue(lm).eval()
    settings = RolloutSettings(response_length=3, missing_eos_penalty=1.0, score_clip=0.75)
    batch, stats = collect(policy, tok, ["问：发热怎么办？\n答：", "问：咳嗽？\n答："], lambda p, r: [2.0, -0.5],
                           settings, RunningMoments())
    assert torch.equal(batch.logprobs, batch.ref_logprobs) and stats["kl"] == 0.0
    assert stats["eos_fraction"] == 0.0 and batch.response_mask.sum().item() == 6  # no EOS in 3 tokens
    assert batch.raw_scores.tolist() == [2.0, -0.5]
    assert stats["score"] == pytest.approx((0.75 + -0.75) / 2)  # 2-1 -> clipped 0.75; -0.5-1 -> -0.75
    # the score is the last token's reward (KL is 0), so its return (A_T + V_T = r_T) is the score
    assert batch.returns[:, -1].tolist() == pytest.approx([0.75, -0.75], abs=1e-6)
