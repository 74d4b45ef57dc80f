"""Each stage trains a few steps on a tiny model on the CPU and really learns: the loss on
a tiny learnable set falls (pt, sft), the reward model ranks chosen over rejected (rm),
DPO's implicit reward margin grows (dpo). Every step sees the whole set (batch >= set),
so the first and last logged losses are the set's loss before and after training."""

import json

import pytest

from stage_helpers import PREFERENCE, PREFERENCE_BY_QUESTION, PT_TEXT, SFT, train, write_jsonl


def test_pt_full_finetuning_lowers_the_loss(tiny_llama, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text(PT_TEXT, encoding="utf-8")
    result = train("pt", tiny_llama, tmp_path / "pt", train_files=[str(text)], finetune="full",
                   learning_rate=1e-2, max_length=32)
    m = result.train_metrics
    print("pt loss", m["first_loss"], "->", m["last_loss"])
    assert m["steps"] == 6 and 4 <= m["examples"] <= 8  # one batch: the whole set
    assert m["last_loss"] < 0.6 * m["first_loss"]
    assert (result.final / "model.safetensors").exists()  # full weights, not an adapter


def test_sft_lora_learns_the_responses_only(tiny_llama, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", SFT)
    # vicuna (the default template) has a long English system prompt: room for it. At 2e-2 the
    # loss swings (7.07 -> 6.63 -> 7.28 ...) and whether 10 steps end low depends on the
    # replies' first token; at 1e-2 it falls steadily (7.07 -> 6.06, token accuracy 0 -> 0.93)
    result = train("sft", tiny_llama, tmp_path / "sft", train_files=[str(data)], learning_rate=1e-2, max_length=256,
                   max_steps=10)
    m = result.train_metrics
    print("sft loss", m["first_loss"], "->", m["last_loss"], "token accuracy", m["first_mean_token_accuracy"], "->",
          m["last_mean_token_accuracy"])
    # LoRA leaves the random tiny model's lm_head and norms frozen, which bounds how sharp its
    # next-token distribution can get: the loss falls less than under full fine-tuning, but
    # the responses' tokens become the model's top choices
    assert m["last_loss"] < m["first_loss"] - 0.5
    assert m["first_mean_token_accuracy"] < 0.2 and m["last_mean_token_accuracy"] > 0.5
    assert (result.final / "adapter_model.safetensors").exists()
    manifest = json.loads((result.final / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["adapter"] is True and manifest["base_folder"] == str(tiny_llama.resolve())


def test_sft_masks_the_prompt(tiny_llama):
    from aimed.trainers.modeling import load_tokenizer
    from aimed.trainers.sft_data import dialogue_segments, encode_segments

    tok = load_tokenizer(str(tiny_llama))
    turns = [("发热怎么办？", "多喝水。"), ("还有呢？", "及时就医。")]
    ids, labels = encode_segments(dialogue_segments(turns, None, "vicuna", tok), tok, 512)
    trained = tok.decode([i for i, lab in zip(ids, labels) if lab != -100])
    assert "多喝水" in trained and "及时就医" in trained and "发热" not in trained and "USER" not in trained
    assert labels.count(tok.eos_token_id) == 2  # each reply ends with EOS, trained on


def test_rm_learns_to_rank_chosen_over_rejected(tiny_llama, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", PREFERENCE_BY_QUESTION)
    result = train("rm", tiny_llama, tmp_path / "rm", train_files=[str(data)], learning_rate=1e-2,
                   eval_fraction=0.25, finetune="full", max_steps=10, template_name="chatglm2")
    m = result.train_metrics
    print("rm loss", m["first_loss"], "->", m["last_loss"], "margin", m["train_margin_before"], "->",
          m["train_margin_after"], "accuracy", m["train_pair_accuracy_before"], "->", m["train_pair_accuracy_after"])
    assert m["last_loss"] < m["first_loss"]
    # ignoring the question ranks half the pairs wrong; after training all are right
    assert m["train_pair_accuracy_before"] == 0.5 and m["train_pair_accuracy_after"] == 1.0
    assert m["train_margin_after"] > m["train_margin_before"] + 1.0
    # held-out pairs scored on each checkpoint, and the checkpoint loads as a reward model
    assert result.scores[result.final]["pair_accuracy"] == 1.0
    from aimed.trainers.rm import load_reward_model, reward_scores

    model, tok, manifest = load_reward_model(result.final)
    assert manifest["stage"] == "rm" and manifest["model_kind"] == "reward_model"
    from aimed.harness.templates import render_prompt

    prompts = [render_prompt("chatglm2", q) for q in ("发热怎么办？", "肥胖怎么办？")]
    water_fever, sport_fever, water_fat, sport_fat = reward_scores(
        model, tok, [prompts[0], prompts[0], prompts[1], prompts[1]], ["多喝水。", "多运动。", "多喝水。", "多运动。"])
    assert water_fever > sport_fever and sport_fat > water_fat


def test_rm_lora_checkpoint_loads_with_its_head(tiny_llama, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", PREFERENCE)
    result = train("rm", tiny_llama, tmp_path / "rm", train_files=[str(data)], learning_rate=1e-2,
                   eval_fraction=0.0, max_steps=12, template_name="chatglm2")
    from aimed.trainers.rm import load_reward_model, pair_figures, encode_pair_side

    model, tok, manifest = load_reward_model(result.final)
    assert manifest["adapter"] is True
    # the loaded checkpoint ranks as the trained model did at its last save
    assert result.scores[result.final]["pair_accuracy"] == pytest.approx(result.train_metrics["train_pair_accuracy_after"])
    m = result.train_metrics
    print("rm-lora loss", m["first_loss"], "->", m["last_loss"], "margin", m["train_margin_before"], "->",
          m["train_margin_after"])
    assert m["last_loss"] < 0.2 * m["first_loss"] and m["train_margin_after"] > m["train_margin_before"] + 1.0
    from aimed.harness.templates import render_prompt

    pairs = [(encode_pair_side(tok, render_prompt("chatglm2", p["question"]), p["response_chosen"], 64),
              encode_pair_side(tok, render_prompt("chatglm2", p["question"]), p["response_rejected"], 64))
             for p in PREFERENCE]
    # the loaded checkpoint (base + adapter + its trained head) gives the trained margin
    assert pair_figures(model, tok, pairs)["margin"] == pytest.approx(m["train_margin_after"], rel=1e-4)


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_dpo_raises_the_reward_margin(tiny_llama, tmp_path, finetune):
    data = write_jsonl(tmp_path / "pairs.jsonl", PREFERENCE)
    result = train("dpo", tiny_llama, tmp_path / "dpo", train_files=[str(data)], finetune=finetune,
                   learning_rate=1e-2 if finetune == "lora" else 2e-3)
    m = result.train_metrics
    print(f"dpo-{finetune} loss", m["first_loss"], "->", m["last_loss"], "margin", m["first_margin"], "->", m["last_margin"])
    assert m["first_loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert m["last_loss"] < 0.5
    assert m["last_margin"] > 0.5 and m["last_accuracy"] == 1.0
