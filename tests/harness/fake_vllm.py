"""A stand-in for the ``vllm`` package, for testing the harness's vLLM backend where vLLM
cannot run (no CUDA GPU). It is NOT vLLM: it runs the checkpoint with transformers, one
prompt at a time, and answers in vLLM's shapes, so what it checks is our side of the
contract: the arguments we pass (unknown ``LLM``/``SamplingParams`` arguments fail, as
they would in vLLM), prompts as token ids, ``RequestOutput.prompt_logprobs`` (None, then
token id -> Logprob(logprob, rank, decoded_token) with the prompt's token and the top-1),
``outputs[0].text`` without the stop string, and ``LoRARequest(name, int_id, path)``.

Install with ``install(monkeypatch)``: it puts ``vllm`` and ``vllm.lora.request`` in
``sys.modules``.
"""

from __future__ import annotations

import copy
import sys
import types
from dataclasses import dataclass
from typing import Optional

import torch

LLM_ARGS = {"model", "tokenizer", "dtype", "trust_remote_code", "enable_prefix_caching", "seed",
            "gpu_memory_utilization", "enable_lora", "max_lora_rank", "max_loras"}


@dataclass
class Logprob:
    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


@dataclass
class SamplingParams:  # the fields of vllm.SamplingParams the harness may set
    n: int = 1
    temperature: float = 1.0
    max_tokens: Optional[int] = 16
    stop: Optional[list] = None
    skip_special_tokens: bool = True
    prompt_logprobs: Optional[int] = None
    detokenize: bool = True


@dataclass(frozen=True)  # hashable, as vLLM's is
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


class LLM:
    instances: list = []

    def __init__(self, **kwargs):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        unknown = set(kwargs) - LLM_ARGS
        assert not unknown, f"not an LLM argument: {unknown}"
        self.kwargs = kwargs
        dtype = kwargs.get("dtype", "auto")
        self.base = AutoModelForCausalLM.from_pretrained(
            kwargs["model"], dtype=torch.float32 if dtype == "auto" else getattr(torch, dtype))
        self.base.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(kwargs["tokenizer"])
        self.model_config = types.SimpleNamespace(max_model_len=self.base.config.max_position_embeddings,
                                                  dtype=self.base.dtype)
        self.loras: dict[int, object] = {}
        self.calls: list = []
        LLM.instances.append(self)

    def _model(self, lora: Optional[LoRARequest]):
        if lora is None:
            return self.base
        assert self.kwargs.get("enable_lora"), "a LoRARequest needs enable_lora=True"
        if lora.lora_int_id not in self.loras:
            from peft import PeftModel

            self.loras[lora.lora_int_id] = PeftModel.from_pretrained(copy.deepcopy(self.base), lora.lora_path).eval()
        return self.loras[lora.lora_int_id]

    @torch.no_grad()
    def generate(self, prompts, sampling_params, lora_request=None, use_tqdm=True):
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        model = self._model(lora_request)
        self.calls.append((len(prompts), lora_request))
        return [self._one(model, p["prompt_token_ids"], sp) for p, sp in zip(prompts, params)]

    def _one(self, model, ids: list[int], sp: SamplingParams):
        assert sp.temperature == 0.0 and sp.n == 1
        prompt_logprobs = None
        if sp.prompt_logprobs is not None:
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            prompt_logprobs = [None]
            for pos in range(1, len(ids)):
                row, tok = logprobs[pos - 1], ids[pos]
                top = int(row.argmax())
                entry = {tok: Logprob(row[tok].item(), int((row > row[tok]).sum()) + 1,
                                      self.tokenizer.decode([tok]))}
                entry.setdefault(top, Logprob(row[top].item(), 1, self.tokenizer.decode([top])))
                prompt_logprobs.append(entry)
            text = ""
        else:
            out = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=sp.max_tokens, do_sample=False,
                                 pad_token_id=self.tokenizer.pad_token_id)
            text = self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=sp.skip_special_tokens)
            for s in sp.stop or []:  # vLLM leaves the stop string out of the text
                text = text.split(s)[0]
        return types.SimpleNamespace(prompt_token_ids=ids, prompt_logprobs=prompt_logprobs,
                                     outputs=[types.SimpleNamespace(index=0, text=text)])


def install(monkeypatch) -> types.ModuleType:
    LLM.instances.clear()
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = LoRARequest
    for name, mod in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, mod)
    return vllm
