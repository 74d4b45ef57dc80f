"""The HF backend's fast paths choose exactly what the plain paths choose.

Real CMExam items (single- and multi-answer, options that tokenise to different lengths,
prompts from a few dozen to several hundred tokens: some with three few-shot examples)
on the tiny Qwen2, scored by the fast paths (``hf_fast.py``) and by the plain ones
(``fast=False``: whole forward passes, ``model.generate``), at batch sizes 1 and 16.
"""

from __future__ import annotations

import pytest
import torch

from aimed.harness.models import hf_fast
from aimed.harness.models.args import ModelArgs
from aimed.harness.models.hf import HFBackend
from aimed.harness.models.requests import GenerateRequest, LoglikelihoodRequest
from aimed.harness.prompts import PromptConfig, build_context, continuations, pick_fewshot
from aimed.harness.scoring.score import CLOZE_NORMS, predict
from aimed.harness.taskregistry import resolve_tasks


@pytest.fixture(scope="module")
def backend(tiny_qwen2):
    b = HFBackend(ModelArgs(model=str(tiny_qwen2), only_cpu=True, dtype="float32"), batch_size=16)
    assert b._use_fast(), "the tiny Qwen2 must take the fast paths, or this file tests nothing"
    return b


@pytest.fixture(scope="module")
def cmexam():
    task = resolve_tasks(["cmexam"])[0]
    samples = task.samples()
    multi = [s for s in samples if s.is_multi_answer][:6]
    single = [s for s in samples if not s.is_multi_answer][:18]
    assert len(multi) == 6
    return task, single[:9] + multi + single[9:]


def _requests(task, samples, mode):
    out = []
    for i, s in enumerate(samples):
        k = 3 if i % 5 == 0 else 0  # every fifth prompt is several times longer
        shots = pick_fewshot(samples, s, k, 1234, "cmexam")
        ctx = build_context(task.spec, s, shots, PromptConfig(mode=mode, num_fewshot=k))
        out.append(LoglikelihoodRequest(ctx, tuple(continuations(task.spec, s, mode))))
    return out


def _both(backend, batch_size, call):
    backend.batch_size = batch_size
    fast = call()
    backend.fast = False
    try:
        plain = call()
    finally:
        backend.fast = True
    return fast, plain


@pytest.mark.parametrize("batch_size", [1, 16])
@pytest.mark.parametrize("mode", ["loglikelihood", "cloze"])
def test_multiple_choice_same_numbers_and_choices(backend, cmexam, mode, batch_size):
    task, samples = cmexam
    reqs = _requests(task, samples, mode)
    lengths = [len(backend.encode(r.context)) for r in reqs]
    assert max(lengths) > 4 * min(lengths)
    if mode == "cloze":  # options of one item tokenise to different lengths
        assert any(len({len(backend.encode_pair(r.context, c)[1]) for c in r.continuations}) > 2 for r in reqs)
    fast, plain = _both(backend, batch_size, lambda: backend.loglikelihood(reqs))
    worst = 0.0
    for req, f_row, p_row in zip(reqs, fast, plain):
        assert len(f_row) == len(p_row) == len(req.continuations)
        for (f_ll, f_n, f_greedy), (p_ll, p_n, p_greedy) in zip(f_row, p_row):
            assert f_ll == pytest.approx(p_ll, abs=1e-4)
            assert (f_n, f_greedy) == (p_n, p_greedy)
            assert f_ll < 0
            worst = max(worst, abs(f_ll - p_ll))
    norms = CLOZE_NORMS if mode == "cloze" else ("none",)
    for norm in norms:
        for s, f_row, p_row in zip(samples, fast, plain):
            assert predict(task.spec, s, mode, f_row, norm) == predict(task.spec, s, mode, p_row, norm), (norm, s.id)
    print(f"{mode} bs={batch_size}: max |dll| {worst:.1e}")


def test_cloze_continuations_are_scored_after_the_shared_prompt(backend):
    """score_continuations against a per-sequence forward, including one-token options."""
    ctx = backend.encode("肝硬化患者最常见的并发症是\n答案：")
    conts = [backend.encode(t) for t in ("上消化道出血", "肝", "肝性脑病与肝肾综合征", "肝性脑病、肝肾综合征与自发性细菌性腹膜炎")]
    assert len({len(c) for c in conts}) == 4 and min(len(c) for c in conts) == 1
    assert 2 * (len(conts[0]) - 1) <= len(conts[3]) - 1  # two length groups: the cache is copied for one
    decoder, head = hf_fast.model_parts(backend.model)
    with torch.no_grad():
        (got,) = hf_fast.score_continuations(decoder, head, [(ctx, conts)], backend._pad, "cpu",
                                              logit_budget=3 * 50, vocab_chunk=50)
        for cont, (ll, n, _) in zip(conts, got):
            logits = backend.model(input_ids=torch.tensor([ctx + cont])).logits[0].float().log_softmax(-1)
            want = sum(logits[len(ctx) - 1 + i, t].item() for i, t in enumerate(cont))
            assert n == len(cont) and ll == pytest.approx(want, abs=1e-4)


def _gen_requests(task_name, n, stops=None):
    task = resolve_tasks([task_name])[0]
    spec = task.spec
    reqs = []
    for i, s in enumerate(task.samples()[:n]):
        shots = pick_fewshot(task.samples()[n:n + 20], s, 2 if i % 4 == 0 else 0, 1234, task_name)
        ctx = build_context(spec, s, shots, PromptConfig(mode="generate", num_fewshot=0))
        reqs.append(GenerateRequest(ctx, 24, tuple(stops if stops is not None else spec.generation.stop)))
    return reqs


@pytest.mark.parametrize("batch_size", [1, 16])
def test_generate_same_texts(backend, batch_size):
    reqs = _gen_requests("medterm", 12)
    # A stop string the tiny model really produces at different steps: rows leave the batch early.
    backend.fast = False
    free = backend.generate([GenerateRequest(r.context, 24, ()) for r in reqs])
    backend.fast = True
    stop = next(t[6:8] for t in free if len(t) > 10 and t[6:8].strip())
    cut = [t.find(stop) for t in free]
    assert sum(0 <= c < 20 for c in cut) >= 2 and any(c == -1 or c >= 20 for c in cut)
    reqs = [GenerateRequest(r.context, 24, (stop, "\n\n")) for r in reqs]
    fast, plain = _both(backend, batch_size, lambda: backend.generate(reqs))
    assert fast == plain
    assert any(len(t) < len(f) for t, f in zip(fast, free))


def test_greedy_tokens_identical_to_model_generate(backend):
    """Token for token, with rows ending on end-of-text at different steps."""
    rows = [backend.encode(r.context) for r in _gen_requests("medterm", 10)]
    model = backend.model
    ids, mask, _ = hf_fast.left_pad(rows, backend._pad, "cpu")
    with torch.no_grad():
        free = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False,
                              pad_token_id=backend._pad, eos_token_id=None)[:, ids.shape[1]:]
    # End-of-text = a token the rows produce at different steps (or never).
    counts = torch.bincount(free[:, 3:12].flatten())
    eos = int(counts.argmax())
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = eos
    try:
        with torch.no_grad():
            want = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, do_sample=False,
                                  pad_token_id=backend._pad)[:, ids.shape[1]:].tolist()
            decoder, head = hf_fast.model_parts(model)
            got = hf_fast.greedy_generate(decoder, head, rows, 16, {eos}, lambda _: False, backend._pad, "cpu")
    finally:
        model.generation_config.eos_token_id = saved
    lengths = []
    for g, w in zip(got, want):
        n = w.index(eos) + 1 if eos in w else len(w)
        assert g == w[:n]
        lengths.append(len(g))
    assert len(set(lengths)) > 1 and max(lengths) == 16


@pytest.mark.parametrize("batch_size", [1, 16])
def test_generate_mode_multiple_choice(backend, cmexam, batch_size):
    task, samples = cmexam
    reqs = []
    for s in samples[:10]:
        ctx = build_context(task.spec, s, [], PromptConfig(mode="generate", num_fewshot=0))
        reqs.append(GenerateRequest(ctx, 8, tuple(task.spec.generation.stop)))
    fast, plain = _both(backend, batch_size, lambda: backend.generate(reqs))
    assert fast == plain
    assert [predict(task.spec, s, "generate", f) for s, f in zip(samples, fast)] == \
        [predict(task.spec, s, "generate", p) for s, p in zip(samples, plain)]


def test_logits_bounded_to_one_chunk(backend):
    """An output layer that is not a plain Linear is called on whole rows, never more than
    logit_budget // vocabulary positions at a time."""
    decoder, head = hf_fast.model_parts(backend.model)
    vocab = head.weight.shape[0]
    seen = []

    def spy(h):
        seen.append(h.shape[0])
        return head(h)

    spy.out_features = vocab  # as a custom output module would say its size

    hidden = torch.randn(23, backend.model.config.hidden_size)
    pos, tok = torch.arange(23), torch.arange(23) % 50
    with torch.no_grad():
        got, _ = hf_fast.score_positions(spy, hidden, pos, tok, logit_budget=5 * vocab)
        want = head(hidden).float().log_softmax(-1)[pos, tok]
    assert max(seen) == 5 and sum(seen) == 23
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("vocab_chunk", [7, 64, 10**6])
def test_vocabulary_slices_give_the_whole_softmax(backend, monkeypatch, vocab_chunk):
    """A Linear output layer applied a slice of the vocabulary at a time (running
    log-sum-exp and argmax) gives the whole log-softmax and argmax, with at most
    logit_budget logits alive, a bias included and ties going to the first token."""
    _, head = hf_fast.model_parts(backend.model)
    vocab, width = head.weight.shape
    biased = torch.nn.Linear(width, vocab, bias=True)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.copy_(torch.randn(vocab))
        biased.weight[5] = biased.weight[vocab - 3]  # a tie across slices: the first index wins
        biased.bias[5] = biased.bias[vocab - 3] = 30.0  # every position's argmax is the tied pair
    hidden = torch.randn(23, width)
    pos = torch.tensor([0, 0, 3, 22, 22, 9, 14])
    tok = torch.tensor([5, vocab - 3, 0, vocab - 1, 17, 5, 300])
    sizes, real_linear = [], torch.nn.functional.linear

    def counting_linear(x, w, b=None):
        out = real_linear(x, w, b)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", counting_linear)
    budget = 4 * min(vocab_chunk, vocab)
    with torch.no_grad():
        got, greedy = hf_fast.score_positions(biased, hidden, pos, tok, logit_budget=budget, vocab_chunk=vocab_chunk)
        logits = real_linear(hidden, biased.weight, biased.bias)
    want = logits.log_softmax(-1)[pos, tok]
    assert torch.allclose(got, want, atol=1e-5)
    assert greedy.tolist() == (logits.argmax(-1)[pos] == tok).tolist()
    assert greedy[0] and not greedy[1]  # the tie: token 5 is the argmax, vocab - 3 is not
    assert max(sizes) <= budget


def test_greedy_tokens_by_vocabulary_slices_are_the_argmax(backend):
    _, head = hf_fast.model_parts(backend.model)
    hidden = torch.randn(9, head.weight.shape[1])
    with torch.no_grad():
        want = head(hidden).argmax(-1)
        for chunk in (7, 100, 10**6):
            assert torch.equal(hf_fast.greedy_tokens(head, hidden, chunk), want)
