"""The batched, left-padded, tail-only paths give what a plain per-sequence forward gives."""

import pytest
import torch

from aimed.harness.models.args import ModelArgs
from aimed.harness.models.hf import HFBackend
from aimed.harness.models.requests import GenerateRequest, LoglikelihoodRequest

CONTEXTS = ["上消化道出血可单纯表现为呕血或黑便，这取决于\nA. 原发病\nB. 出血部位\nC. 出血量\n答案：",
            "夜间阵发性呼吸困难，可见于\n答案：", "短\n答案：", "肝硬化患者最常见的并发症是什么？" * 3 + "\n答案："]
CONTS = [("A", "B", "C"), ("左心功能不全", "癔病", "急性脑血管疾病"), ("A", "B"), ("上消化道出血", "肝性脑病")]


def plain_loglikelihood(backend: HFBackend, context: str, cont: str) -> float:
    ctx, tgt = backend.encode_pair(context, cont)
    ids = torch.tensor([ctx + tgt])
    logits = backend.model(input_ids=ids).logits[0].float().log_softmax(-1)
    return sum(logits[len(ctx) - 1 + i, t].item() for i, t in enumerate(tgt))


@pytest.mark.parametrize("batch_size", [1, 16])
def test_loglikelihood_matches_plain_forward(tiny_llama, batch_size):
    backend = HFBackend(ModelArgs(model=str(tiny_llama), only_cpu=True), batch_size=batch_size)
    reqs = [LoglikelihoodRequest(c, k) for c, k in zip(CONTEXTS, CONTS)]
    got = backend.loglikelihood(reqs)
    for req, scores in zip(reqs, got):
        for cont, (logprob, n_tokens, _) in zip(req.continuations, scores):
            assert logprob == pytest.approx(plain_loglikelihood(backend, req.context, cont), abs=1e-4)
            assert n_tokens == len(backend.encode_pair(req.context, cont)[1])


def test_generate_matches_unbatched(tiny_llama):
    backend = HFBackend(ModelArgs(model=str(tiny_llama), only_cpu=True), batch_size=16)
    reqs = [GenerateRequest(c, 12, ("\n\n",)) for c in CONTEXTS]
    batched = backend.generate(reqs)
    one_by_one = [backend.generate([r])[0] for r in reqs]
    assert batched == one_by_one
    assert all(isinstance(t, str) for t in batched) and any(batched)
