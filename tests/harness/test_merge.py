"""aimed-eval merge: a merged checkpoint gives the logits of base + adapter."""

import json

import pytest
import torch


@pytest.fixture(scope="module")
def lora_adapter(tiny_llama, tmp_path_factory):
    """A LoRA adapter with non-zero B matrices (peft starts B at zero, which would make
    any merge trivially right), saved as a trainer would save it."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapters") / "sft-lora"
    model.save_pretrained(out)
    (out / "aimed_checkpoint.json").write_text(json.dumps({"stage": "sft", "base_model": "tiny-llama",
                                                           "step": 10}), encoding="utf-8")
    return out


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merged_logits_equal_base_plus_adapter(cli, tiny_llama, lora_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    code, stdout, err = cli("merge", "--model", tiny_llama, "--lora_model", lora_adapter, "--only_cpu",
                            "--dtype", "float32", "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == ["model.safetensors"]
    manifest = json.loads((out / "aimed_checkpoint.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "merged" and manifest["stage"] == "sft" and manifest["parent"] == str(lora_adapter)
    assert manifest["base_model"] == "tiny-llama" and manifest["step"] == 10

    tok = AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok.encode("患者男，45岁，反复上腹痛3年。答案：", add_special_tokens=False)])
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    plain = _logits(base, ids)
    with_adapter = _logits(PeftModel.from_pretrained(base, lora_adapter), ids)
    merged = _logits(AutoModelForCausalLM.from_pretrained(out), ids)
    assert (with_adapter - plain).abs().max() > 1e-3  # the adapter really changes the model
    assert (merged - with_adapter).abs().max().item() < 1e-5


def test_merge_refuses_an_existing_folder_and_leaves_nothing_half_written(cli, tiny_llama, lora_adapter, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    for extra in ([], ["--overwrite"]):  # not a folder merge wrote: refused even with --overwrite
        code, _, err = cli("merge", "--model", tiny_llama, "--lora_model", lora_adapter, "--out", out,
                           "--only_cpu", *extra)
        assert code == 2 and "did not write" in err and "Traceback" not in err
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    code, _, err = cli("merge", "--model", tiny_llama, "--out", tmp_path / "m2", "--only_cpu")
    assert code == 2 and "exactly one adapter" in err
    code, _, err = cli("merge", "--model", tiny_llama, "--lora_model", tmp_path / "missing", "--out",
                       tmp_path / "m3", "--only_cpu")
    assert code == 2 and "no such folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
