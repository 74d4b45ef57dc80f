"""The Hugging Face backend: batched log-likelihoods and greedy generation on a causal LM.

Batches are left-padded (with position ids counted from each row's first real token),
so every row's last context token sits in the last column. Requests are sorted longest
first, so memory trouble shows up in the first batch.

Two ways to compute each answer, with the same numbers (tests/harness/test_fast_paths.py):
the fast paths of ``hf_fast.py`` (the default: the output layer only at scored positions,
each cloze prompt run once with its options as cached continuations, greedy decoding
that drops finished rows) and the plain paths below (``fast=False``: whole forward
passes with ``logits_to_keep`` and ``model.generate``), which are the reference and the
fallback for models the fast paths do not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch

from .args import ModelArgs
from .backend import BackendKind, BackendOptions, HashFolder
from .fingerprint import checkpoint_fingerprint
from .loading import checkpoint_info, load_model, load_tokenizer
from ..templates import start_token_ids
from .requests import ContinuationScore, GenerateRequest, LoglikelihoodRequest, cut_at_stop
from . import hf_fast


class HFBackend:
    name = "hf"

    def __init__(self, args: ModelArgs, batch_size: str | int = "auto", fast: bool = True):
        self.args = args
        # Folders are checked now; weights and tokenizer load on first use, so a rerun whose
        # every request is in the response cache loads neither (evaluate() fingerprints the
        # files named in info; runner asks for the tokenizer only for its chat template).
        self.info = checkpoint_info(args)
        self.device = self.info.device
        self._model = self._tokenizer = None
        self.batch_size = batch_size
        self.fast = fast  # False: the plain paths (reference, and fallback)
        self._fast_checked = False
        self._start_ids: Optional[list[int]] = None  # templates.start_token_ids, once the tokenizer is loaded

    @property
    def model(self):
        if self._model is None:
            self._model, self._tokenizer, self.info = load_model(self.args, self.info, self._tokenizer)
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.args, Path(self.info.model_folder))
        return self._tokenizer

    @property
    def max_length(self) -> int:
        if self.info.max_length is None:
            self.model  # loading the model records it
        return self.info.max_length

    def use_adapter(self, folder: str) -> None:
        """Score with another LoRA adapter of the loaded base (``models/adapters.py``)."""
        from dataclasses import replace

        from .adapters import swap_adapter

        self.info.adapter_folders = [swap_adapter(self.model, folder)]
        self.args = replace(self.args, lora_model=[folder])

    def fingerprint(self, args: ModelArgs, hash_folder: HashFolder) -> str:
        return checkpoint_fingerprint(self.info.model_folder, self.info.adapter_folders, args, self.info.dtype,
                                      hash_folder)

    # ---- tokenisation -------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        # No special tokens, as lm-evaluation-harness does for causal LMs, but the start the
        # template's own model code puts first (Llama's <s> for vicuna, ChatGLM2's [gMASK] sop)
        return self.start_ids + self.tokenizer.encode(text, add_special_tokens=False)

    @property
    def start_ids(self) -> list[int]:
        if self._start_ids is None:
            self._start_ids = start_token_ids(self.args.template_name, self.tokenizer)
        return self._start_ids

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Split like lm-eval: encode the whole, take the context's length off the front."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        if not ctx:  # an empty context is scored after the end-of-text token
            ctx, whole = [self.tokenizer.eos_token_id], [self.tokenizer.eos_token_id] + whole
        return ctx, whole[len(ctx):]

    # ---- batching -----------------------------------------------------------------
    def _batch_size(self, longest: int, generating: bool = False) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        # Bounded by tokens a batch, so long prompts get smaller batches. On a CPU, scoring is
        # fastest in small batches (a 512-token batch kept a 151,936-vocab, hidden-512 Qwen2 at
        # the matmul's throughput on one thread; 8192 tokens ran 30% slower: activations that
        # outgrow the caches, more padding). Decoding steps one token a row, so there more rows
        # amortise reading the weights.
        if self.device.startswith("cuda"):
            budget = 32768
        else:
            budget = 8192 if generating else 512 * max(1, torch.get_num_threads())
        return max(1, min(64, budget // max(1, longest)))

    def _logits(self) -> dict:
        """How the output layer is applied: at most ``logit_budget`` logits at once (64 MB of
        fp32 on a CPU), a vocabulary slice at a time on a CPU, the whole vocabulary on a GPU."""
        if self.device.startswith("cuda"):
            return {"logit_budget": 1 << 26, "vocab_chunk": int(self.model.config.vocab_size)}
        return {"logit_budget": 1 << 24, "vocab_chunk": hf_fast.VOCAB_CHUNK}

    def _use_fast(self) -> bool:
        """The fast paths, unless ``fast=False`` or this model's logits are not head(decoder(x))."""
        if self.fast and not self._fast_checked:
            self._fast_checked = True
            vocab = min(len(self.tokenizer), int(self.model.config.vocab_size))
            self.fast = hf_fast.parts_match(self.model, vocab, self.device)
        return self.fast

    @property
    def _pad(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def _forward_tail(self, rows: Sequence[list[int]], keep: int) -> torch.Tensor:
        """Log-probabilities of the last ``keep`` positions of each left-padded row: [B, keep, V]."""
        ids, mask, positions = hf_fast.left_pad(rows, self._pad, self.device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep,
                         use_cache=False)
        return torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)

    def _truncate(self, ctx: list[int], cont: list[int]) -> list[int]:
        whole = (ctx + cont)[:-1]
        return whole[-(self.max_length):]

    @torch.no_grad()
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], bar=None) -> list[list[ContinuationScore]]:
        """For each request, a score per continuation, in the request's order.

        ``bar`` (a tqdm bar or None) advances by one for every request scored."""
        # Flatten to (request index, continuation index, context ids, continuation ids).
        flat = []
        for ri, req in enumerate(requests):
            for ci, cont in enumerate(req.continuations):
                ctx_ids, cont_ids = self.encode_pair(req.context, cont)
                flat.append((ri, ci, ctx_ids, cont_ids))
        results: list[list[Optional[ContinuationScore]]] = [[None] * len(r.continuations) for r in requests]
        # Fast path: every continuation of a request is one token after the same context:
        # one forward pass scores all of them from a single row of logits.
        single: dict[int, list] = {}
        multi = []
        by_request: dict[int, list] = {}
        for item in flat:
            by_request.setdefault(item[0], []).append(item)
        for ri, items in by_request.items():
            if all(len(c) == 1 and ctx == items[0][2] for _, _, ctx, c in items):
                single[ri] = items
            else:
                multi.extend(items)
        if self._use_fast():
            self._fast_single(single, results, bar)
            multi = self._fast_multi(multi, results, bar)  # what it leaves: too long for one window
        else:
            self._score_single(single, results, bar)
        self._score_multi(multi, results, bar)
        return results  # type: ignore[return-value]

    def _fast_single(self, single: dict[int, list], results, bar) -> None:
        """One-token continuations: the output layer at each row's last position only."""
        decoder, head = hf_fast.model_parts(self.model)
        order = sorted(single, key=lambda ri: -len(single[ri][0][2]))
        i = 0
        while i < len(order):
            chunk = order[i:i + self._batch_size(len(single[order[i]][0][2]))]
            rows = [single[ri][0][2][-self.max_length:] for ri in chunk]
            conts = [[cont[0] for *_, cont in single[ri]] for ri in chunk]
            scores = hf_fast.next_token_scores(decoder, head, rows, conts, self._pad, self.device,
                                               **self._logits())
            for ri, row in zip(chunk, scores):
                for (_, ci, _, _), score in zip(single[ri], row):
                    results[ri][ci] = score
            _advance(bar, len(chunk))
            i += len(chunk)

    def _fast_multi(self, multi: list, results, bar) -> list:
        """Multi-token continuations (cloze): each request's context once, its continuations
        as cached continuations of it. Returns the items it leaves to the plain path: those
        of requests whose context and continuation do not fit in one window."""
        groups: dict[int, list] = {}
        for item in multi:
            groups.setdefault(item[0], []).append(item)
        fits, rest = [], []
        for ri, items in groups.items():
            ctx = items[0][2]
            if all(it[2] == ctx and len(ctx) + len(it[3]) - 1 <= self.max_length for it in items):
                fits.append(ri)
            else:
                rest.extend(items)
        decoder, head = hf_fast.model_parts(self.model)
        fits.sort(key=lambda ri: -len(groups[ri][0][2]))
        i = 0
        while i < len(fits):
            # Items a batch: as many contexts as one-token requests of this length would get
            # (a fixed --batch_size N: N sequences, context + continuation, as the plain path).
            first = groups[fits[i]]
            if self.batch_size == "auto":
                cap, size = self._batch_size(len(first[0][2])), lambda ri: 1
            else:
                cap, size = int(self.batch_size), lambda ri: len(groups[ri])
            chunk, rows = [], 0
            for ri in fits[i:]:
                if chunk and rows + size(ri) > cap:
                    break
                chunk.append(ri)
                rows += size(ri)
            items = [(groups[ri][0][2], [it[3] for it in groups[ri]]) for ri in chunk]
            scores = hf_fast.score_continuations(decoder, head, items, self._pad, self.device, **self._logits())
            for ri, row in zip(chunk, scores):
                for (_, ci, _, _), score in zip(groups[ri], row):
                    results[ri][ci] = score
            _advance(bar, len(chunk))
            i += len(chunk)
        return rest

    def _score_single(self, single: dict[int, list], results, bar) -> None:
        order = sorted(single, key=lambda ri: -len(single[ri][0][2]))
        i = 0
        while i < len(order):
            bs = self._batch_size(len(single[order[i]][0][2]))
            chunk = order[i:i + bs]
            rows = [single[ri][0][2][-self.max_length:] for ri in chunk]
            logprobs = self._forward_tail(rows, keep=1)[:, 0, :]  # [B, V]
            greedy = logprobs.argmax(-1)
            for b, ri in enumerate(chunk):
                for _, ci, _, cont in single[ri]:
                    tok = cont[0]
                    results[ri][ci] = (logprobs[b, tok].item(), 1, bool(greedy[b].item() == tok))
            _advance(bar, len(chunk))
            i += bs

    def _score_multi(self, multi: list, results, bar) -> None:
        multi = sorted(multi, key=lambda it: -(len(it[2]) + len(it[3])))
        n_conts: dict[int, int] = {}
        for ri, *_ in multi:
            n_conts[ri] = n_conts.get(ri, 0) + 1
        i = 0
        while i < len(multi):
            bs = self._batch_size(len(multi[i][2]) + len(multi[i][3]))
            chunk = multi[i:i + bs]
            rows = [self._truncate(ctx, cont) for _, _, ctx, cont in chunk]
            keep = max(len(cont) for *_, cont in chunk)
            logprobs = self._forward_tail(rows, keep=keep)  # [B, keep, V]
            for b, (ri, ci, _, cont) in enumerate(chunk):
                tail = logprobs[b, keep - len(cont):, :]  # the positions that predict `cont`
                target = torch.tensor(cont, device=tail.device)
                picked = tail.gather(-1, target[:, None])[:, 0]
                results[ri][ci] = (picked.sum().item(), len(cont), bool((tail.argmax(-1) == target).all()))
                n_conts[ri] -= 1
                _advance(bar, n_conts[ri] == 0)  # a request is done when its last continuation is
            i += bs

    # ---- generation ---------------------------------------------------------------
    @torch.no_grad()
    def generate(self, requests: Sequence[GenerateRequest], bar=None) -> list[str]:
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context))
        out: list[str] = [""] * len(requests)
        i = 0
        while i < len(order):
            first = requests[order[i]]
            enc0 = self.encode(first.context)
            bs = self._batch_size(len(enc0) + first.max_new_tokens, generating=True)
            # A batch shares generation settings; split where they change.
            chunk = [order[i]]
            for j in order[i + 1:i + bs]:
                if (requests[j].max_new_tokens, requests[j].stop) != (first.max_new_tokens, first.stop):
                    break
                chunk.append(j)
            texts = self._generate_batch([requests[j].context for j in chunk], first)
            for j, text in zip(chunk, texts):
                out[j] = text
            _advance(bar, len(chunk))
            i += len(chunk)
        return out

    def _generate_batch(self, contexts: list[str], req: GenerateRequest) -> list[str]:
        budget = max(1, self.max_length - req.max_new_tokens)
        rows = [self.encode(c)[-budget:] or [self.tokenizer.eos_token_id] for c in contexts]
        if self._use_fast() and hf_fast.greedy_settings_plain(self.model.generation_config):
            decoder, head = hf_fast.model_parts(self.model)
            new = hf_fast.greedy_generate(decoder, head, rows, req.max_new_tokens, self._eos_ids(),
                                          self._stop_check(req.stop), self._pad, self.device,
                                          vocab_chunk=self._logits()["vocab_chunk"])
            texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in new]
            return [cut_at_stop(t, req.stop) for t in texts]
        ids, mask, _ = hf_fast.left_pad(rows, self._pad, self.device)
        kwargs = {}
        if req.stop:
            kwargs.update(stop_strings=list(req.stop), tokenizer=self.tokenizer)
        gen = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=req.max_new_tokens,
                                  do_sample=False, pad_token_id=self._pad, **kwargs)
        texts = self.tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)
        return [cut_at_stop(t, req.stop) for t in texts]

    def _eos_ids(self) -> set[int]:
        """The ids that end a sequence in ``model.generate`` (its generation config's)."""
        eos = self.model.generation_config.eos_token_id
        return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])

    def _stop_check(self, stops: tuple[str, ...]):
        """Has a stop string appeared in these generated ids? Only the tail is decoded: a
        stop string first appears in the last few tokens (every token adds a byte or more)."""
        stops = tuple(s for s in stops if s)
        if not stops:
            return lambda ids: False
        window = 4 + max(len(s.encode("utf-8")) for s in stops)

        def stopped(ids: list[int]) -> bool:
            text = self.tokenizer.decode(ids[-window:], skip_special_tokens=True)
            return any(s in text for s in stops)

        return stopped


def _advance(bar, n: int) -> None:
    if bar is not None and n:
        bar.update(int(n))


def _build(options: BackendOptions, runs: list[ModelArgs]) -> HFBackend:
    return HFBackend(runs[0], batch_size=options.batch_size)


KIND = BackendKind(name="hf", summary="load the checkpoint here, with transformers and peft (default)",
                   build=_build, data_parallel=True)
