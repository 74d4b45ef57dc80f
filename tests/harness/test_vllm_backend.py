"""--backend vllm without vLLM (it needs a CUDA GPU): the missing-package error, and the
translations between the harness's requests and vLLM's structures.

vLLM's scoring output is rebuilt here from a real tiny model, shaped as vLLM returns it
(``RequestOutput.prompt_logprobs``: None for the first position, then a dict token id ->
Logprob(logprob, rank, decoded_token) holding the prompt's token and the top-1 token, as
``prompt_logprobs=1`` gives), and the scores read from it must equal the hf backend's."""

import json
import sys
from dataclasses import dataclass
from typing import Optional

import pytest
import torch

from aimed.harness.models.requests import GenerateRequest
from aimed.harness.models.vllm_backend import (INSTALL, continuation_score, generate_params, max_lora_rank,
                                               prompt_ids, score_params, split_pair)

SAMPLING_FIELDS = {"n", "temperature", "max_tokens", "stop", "skip_special_tokens", "prompt_logprobs",
                   "detokenize"}  # vllm.SamplingParams fields (vllm/sampling_params.py, 0.6 .. 0.33)


@dataclass
class Logprob:  # the shape of vllm.logprobs.Logprob
    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


def test_missing_vllm_is_one_line_with_the_install_command(cli, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError, installed or not
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--backend", "vllm", "--model", tiny_llama, "--tasks", "demo_mcq",
                            "--output_dir", out, "--no_cache", "--quiet")
    assert code == 2
    assert err.strip().splitlines() == [f"aimed-eval: error: --backend vllm: the vllm package is not installed; "
                                        f"install it with {INSTALL} (it needs a CUDA GPU), or use --backend hf"]
    assert not out.exists() and stdout == ""


def test_generate_params():
    req = GenerateRequest("问题：什么是高血压？\n解释：", 64, ("\n\n", "问题："))
    params = generate_params(req)
    assert params == {"n": 1, "temperature": 0.0, "max_tokens": 64, "stop": ["\n\n", "问题："],
                      "skip_special_tokens": True}
    assert generate_params(GenerateRequest("x", 8, ()))["stop"] is None
    assert set(params) | set(score_params()) <= SAMPLING_FIELDS
    assert score_params()["prompt_logprobs"] == 1 and score_params()["temperature"] == 0.0


def test_prompt_ids_truncate_from_the_left():
    assert prompt_ids([1, 2, 3], [4, 5], 100) == ([1, 2, 3, 4, 5], 3)
    assert prompt_ids([1, 2, 3], [4, 5], 4) == ([2, 3, 4, 5], 2)
    assert prompt_ids([1, 2, 3], [4, 5], 2) == ([4, 5], 1)  # one token is always kept as context


def test_max_lora_rank(tmp_path):
    folders = []
    for i, r in enumerate((4, 12)):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / "adapter_config.json").write_text(json.dumps({"r": r}), encoding="utf-8")
        folders.append(tmp_path / str(i))
    assert max_lora_rank(folders[:1]) == 8 and max_lora_rank(folders) == 16


def _vllm_prompt_logprobs(model, ids: list[int], tokenizer) -> list:
    """What vLLM's RequestOutput.prompt_logprobs holds for ``ids`` with prompt_logprobs=1."""
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    out: list = [None]
    for pos in range(1, len(ids)):
        row = logprobs[pos - 1]
        tok, top = ids[pos], int(row.argmax())
        entry = {tok: Logprob(row[tok].item(), int((row > row[tok]).sum()) + 1, tokenizer.decode([tok]))}
        entry.setdefault(top, Logprob(row[top].item(), 1, tokenizer.decode([top])))
        out.append(entry)
    return out


@pytest.mark.parametrize("mode", ["loglikelihood", "cloze"])
def test_scores_from_vllm_shaped_output_equal_the_hf_backend(tiny_llama, mode):
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.models.hf import HFBackend
    from aimed.harness.runner import RunOptions, build_requests
    from aimed.harness.taskregistry import resolve_tasks

    hf = HFBackend(ModelArgs(model=str(tiny_llama), dtype="float32", only_cpu=True), batch_size=8)
    requests, *_ = build_requests(resolve_tasks(["demo_mcq"])[0], RunOptions(mode=mode, progress=False), hf.tokenizer)
    requests = requests[:10]
    expected = hf.loglikelihood(requests)
    for req, want in zip(requests, expected):
        for cont, (ll, n, greedy) in zip(req.continuations, want):
            ids, start = prompt_ids(*split_pair(hf.encode, hf.tokenizer.eos_token_id, req.context, cont),
                                    hf.max_length)
            got = continuation_score(_vllm_prompt_logprobs(hf.model, ids, hf.tokenizer), ids, start)
            assert got[0] == pytest.approx(ll, abs=1e-4)
            assert got[1:] == (n, greedy)


def test_greedy_without_ranks_and_missing_entries():
    ids = [5, 7, 9]
    plain = [None, {7: -0.5, 3: -1.5}, {9: -2.0, 4: -0.1}]  # bare floats, as vLLM < 0.4 returned
    assert continuation_score(plain, ids, 1) == (pytest.approx(-2.5), 2, False)
    assert continuation_score(plain, ids, 2)[2] is False and continuation_score(plain[:2], ids[:2], 1)[2] is True
    ranked = [None, {7: Logprob(-0.5, 1)}, {9: Logprob(-2.0, 3, "x"), 4: Logprob(-0.1, 1, "y")}]
    assert continuation_score(ranked, ids, 1) == (pytest.approx(-2.5), 2, False)
    assert continuation_score(ranked[:2], ids[:2], 1) == (pytest.approx(-0.5), 1, True)
    from aimed.harness.errors import UserError

    with pytest.raises(UserError, match="no log-probability for prompt token 2"):
        continuation_score([None, {7: Logprob(-0.5, 1)}, {4: Logprob(-0.1, 1)}], ids, 1)


def _lora(base, out, seed):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def loras(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm-loras")
    return [_lora(tiny_llama, root / f"lora-{i}", seed=20 + i) for i in (1, 2)]


def test_the_backend_through_the_cli_on_a_stand_in_engine(cli, tiny_llama, loras, tmp_path, monkeypatch):
    """VLLMBackend end to end on tests/harness/fake_vllm.py (transformers answering in vLLM's
    shapes; not vLLM): two adapters in one run score what the hf backend scores."""
    import fake_vllm

    argv = ["run", "--model", tiny_llama, "--lora_model", f"{loras[0]},{loras[1]}", "--tasks", "demo",
            "--mode", "cloze", "--limit", "6", "--dtype", "float32", "--no_cache", "--no_index", "--quiet"]
    code, _, err = cli(*argv, "--output_dir", tmp_path / "hf", "--only_cpu")
    assert code == 0, err
    fake_vllm.install(monkeypatch)
    code, _, err = cli(*argv, "--output_dir", tmp_path / "vllm", "--backend", "vllm")
    assert code == 0, err

    (llm,) = fake_vllm.LLM.instances  # the base was loaded once for both adapters
    assert llm.kwargs["enable_lora"] is True and llm.kwargs["max_lora_rank"] == 8
    assert llm.kwargs["enable_prefix_caching"] is True and llm.kwargs["dtype"] == "float32"
    assert [(r.lora_int_id, r.lora_path) for r in dict.fromkeys(c[1] for c in llm.calls)] == \
        [(1, str(loras[0])), (2, str(loras[1]))]
    for lora in loras:
        hf_dir, vllm_dir = tmp_path / "hf" / lora.name, tmp_path / "vllm" / lora.name
        hf_res, vllm_res = (json.loads((d / "results.json").read_text(encoding="utf-8")) for d in (hf_dir, vllm_dir))
        assert vllm_res["config"]["model"] == "vllm" and vllm_res["aimed"]["model"]["adapters"] == [str(lora)]
        assert vllm_res["aimed"]["model"]["fingerprint"] != hf_res["aimed"]["model"]["fingerprint"]
        for task in ("demo_mcq", "demo_medterm"):
            a, b = ([json.loads(x) for x in (d / f"samples_{task}.jsonl").read_text(encoding="utf-8").splitlines()]
                    for d in (hf_dir, vllm_dir))
            assert [r["filtered_resps"] for r in a] == [r["filtered_resps"] for r in b], (lora.name, task)
            if task == "demo_mcq":
                for ra, rb in zip(a, b):
                    assert [s[0] for s in rb["resps"]] == pytest.approx([s[0] for s in ra["resps"]], abs=1e-4)
                    assert [s[1:] for s in rb["resps"]] == [s[1:] for s in ra["resps"]]
            else:
                assert any(r["filtered_resps"] for r in a)  # some text was generated and compared
