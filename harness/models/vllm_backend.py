"""The vLLM backend (``--backend vllm``): the same requests as the ``hf`` backend on vLLM's
engine, for GPU machines. ``pip install 'aimed-eval[vllm]'``; vllm is imported only here
and only when asked for.

- ``loglikelihood``: each (context, continuation) pair is one prompt of token ids, split
  exactly as the ``hf`` backend splits it (the whole text encoded, the context's tokens
  taken off the front, as lm-evaluation-harness does), sent with ``prompt_logprobs=1``
  and ``max_tokens=1``; the continuation's score is the sum of the prompt log-probabilities
  from the context's end on, and it is greedy when each of its tokens has rank 1. vLLM's
  prefix caching computes a context shared by an item's options once.
- ``generate``: greedy (``temperature=0``), ``max_tokens`` and the stop strings, on the
  context's token ids (left-truncated to leave room for the answer); the text is cut at
  the first stop string, as the other backends cut it.
- LoRA adapters: ``enable_lora`` with a ``LoRARequest`` per adapter; ``use_adapter``
  swaps to another adapter of the base without reloading it (several adapters in one run).

The pure translations (``generate_params``, ``score_params``, ``prompt_ids``,
``continuation_score``) take and return plain values and vLLM-shaped structures, so they
are tested without vLLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from ..errors import UserError
from .args import ModelArgs
from .backend import BackendKind, BackendOptions, CheckpointInfo, HashFolder
from .fingerprint import checkpoint_fingerprint
from .requests import ContinuationScore, GenerateRequest, LoglikelihoodRequest, cut_at_stop

INSTALL = "pip install 'aimed-eval[vllm]'"
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise UserError(f"--backend vllm: the vllm package is not installed; install it with {INSTALL} "
                        "(it needs a CUDA GPU), or use --backend hf") from None
    return vllm


# ---- pure translations ---------------------------------------------------------------
def generate_params(req: GenerateRequest) -> dict:
    """SamplingParams keyword arguments for one greedy generation request."""
    return {"n": 1, "temperature": 0.0, "max_tokens": req.max_new_tokens,
            "stop": list(req.stop) if req.stop else None, "skip_special_tokens": True}


def score_params() -> dict:
    """SamplingParams keyword arguments for scoring a prompt: its log-probabilities, with the
    top-1 token beside each (``max_tokens=1``: vLLM must generate at least one token)."""
    return {"n": 1, "temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1, "detokenize": False}


def split_pair(encode, eos_id: int, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as the hf backend splits them: trailing spaces of the
    context move to the continuation, the whole is encoded and the context's length taken
    off the front; an empty context is scored after the end-of-text token."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    ctx = encode(context)
    if not ctx:
        ctx, whole = [eos_id], [eos_id] + whole
    return ctx, whole[len(ctx):]


def prompt_ids(ctx: list[int], cont: list[int], max_length: int) -> tuple[list[int], int]:
    """The prompt for one pair and where its continuation starts, left-truncated to
    ``max_length`` tokens (at least one context token is kept to condition on)."""
    whole = ctx + cont
    keep = min(len(whole), max_length)
    ids = whole[-keep:]
    return ids, max(1, len(ids) - len(cont))


def _value(lp: Any) -> float:
    return float(getattr(lp, "logprob", lp))  # vLLM's Logprob, or a bare float (old versions)


def continuation_score(prompt_logprobs: Sequence, token_ids: Sequence[int], start: int) -> ContinuationScore:
    """(sum of log-probabilities, tokens, greedy?) of ``token_ids[start:]`` from a request
    output's ``prompt_logprobs``: one entry a prompt position (None for the first), each a
    mapping token id -> Logprob(logprob, rank, decoded_token) that holds the prompt's token
    and the top-1 token (a list of dicts or vLLM's FlatLogprobs, indexed the same way)."""
    total, greedy = 0.0, True
    for pos in range(start, len(token_ids)):
        entry, tok = prompt_logprobs[pos], token_ids[pos]
        if not entry or tok not in entry:
            raise UserError(f"vLLM returned no log-probability for prompt token {pos}; "
                            "upgrade vllm or score with --mode generate")
        lp = entry[tok]
        total += _value(lp)
        rank = getattr(lp, "rank", None)
        greedy = greedy and (rank == 1 if rank is not None else
                             max(entry, key=lambda t: _value(entry[t])) == tok)
    return total, len(token_ids) - start, greedy


def max_lora_rank(adapter_folders: Sequence[str]) -> int:
    """The smallest rank vLLM accepts that fits every adapter's ``r``."""
    ranks = [int(json.loads((Path(a) / "adapter_config.json").read_text(encoding="utf-8")).get("r", 8))
             for a in adapter_folders]
    need = max(ranks, default=8)
    for r in LORA_RANKS:
        if r >= need:
            return r
    raise UserError(f"LoRA rank {need}: vLLM serves ranks up to {LORA_RANKS[-1]}; use --backend hf")


# ---- the backend ----------------------------------------------------------------------
class VLLMBackend:
    name = "vllm"

    def __init__(self, args: ModelArgs, adapter_folders: Sequence[str] = (), gpu_memory_utilization: float = 0.85):
        """``adapter_folders``: every adapter the run will use (the engine reserves room for
        the largest rank); the first of ``args.lora_model`` is active at the start."""
        if args.only_cpu or args.device == "cpu":
            raise UserError("--backend vllm runs on GPUs; drop --only_cpu/--device cpu or use --backend hf")
        if args.resize_emb:
            raise UserError("--resize_emb applies to --backend hf; resize and save the checkpoint first")
        vllm = import_vllm()
        from .loading import _check_checkpoint, load_tokenizer, local_folder, snapshot_folder

        folder = local_folder(args.model, "--model") or snapshot_folder(args.model, args.revision)
        _check_checkpoint(folder, "--model", "config.json")
        self.args = args
        self._start_ids: Optional[list[int]] = None  # templates.start_token_ids, on first encode
        self.tokenizer = load_tokenizer(args, folder)  # the same ids as the hf backend's
        adapters = list(adapter_folders) or list(args.lora_model)
        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank(adapters), "max_loras": 1} if adapters else {}
        self.llm = vllm.LLM(model=str(folder), tokenizer=args.tokenizer_path or str(folder), dtype=args.dtype,
                            trust_remote_code=args.trust_remote_code, enable_prefix_caching=True, seed=0,
                            gpu_memory_utilization=gpu_memory_utilization, **lora)
        self._sampling = vllm.SamplingParams
        from vllm.lora.request import LoRARequest

        self._lora_cls, self._lora, self._lora_ids = LoRARequest, None, 0
        config = self.llm.model_config
        self.max_length = int(config.max_model_len)
        self.info = CheckpointInfo(model_folder=str(folder), device="cuda (vllm)",
                                   dtype=str(config.dtype).replace("torch.", ""), max_length=self.max_length)
        if args.lora_model:
            self.use_adapter(args.lora_model[0])

    def use_adapter(self, folder: str) -> None:
        path = Path(folder).expanduser().resolve()
        if not (path / "adapter_config.json").exists():
            raise UserError(f"--lora_model {folder}: no adapter_config.json there; give a LoRA adapter folder")
        self._lora_ids += 1  # vLLM keys loaded adapters by this id: a new one for each adapter
        self._lora = self._lora_cls(path.name, self._lora_ids, str(path))
        self.info.adapter_folders = [str(path)]

    def fingerprint(self, args: ModelArgs, hash_folder: HashFolder) -> str:
        return checkpoint_fingerprint(self.info.model_folder, self.info.adapter_folders, args, self.info.dtype,
                                      hash_folder, engine=self.name)

    def encode(self, text: str) -> list[int]:
        # as the hf backend encodes: the template's start (templates.start_token_ids), then the text
        if self._start_ids is None:
            from ..templates import start_token_ids

            self._start_ids = start_token_ids(self.args.template_name, self.tokenizer)
        return self._start_ids + self.tokenizer.encode(text, add_special_tokens=False)

    def _run(self, prompts: list[dict], params) -> list:
        return self.llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], bar=None) -> list[list[ContinuationScore]]:
        prompts, where = [], []
        for ri, req in enumerate(requests):
            for cont in req.continuations:
                ids, start = prompt_ids(*split_pair(self.encode, self.tokenizer.eos_token_id, req.context, cont),
                                        self.max_length)
                prompts.append({"prompt_token_ids": ids})
                where.append((ri, ids, start))
        outputs = self._run(prompts, self._sampling(**score_params()))
        results: list[list[Optional[ContinuationScore]]] = [[] for _ in requests]
        for (ri, ids, start), out in zip(where, outputs):
            results[ri].append(continuation_score(out.prompt_logprobs, ids, start))
        if bar is not None:
            bar.update(len(requests))
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest], bar=None) -> list[str]:
        prompts, params = [], []
        for req in requests:
            budget = max(1, self.max_length - req.max_new_tokens)
            prompts.append({"prompt_token_ids": self.encode(req.context)[-budget:] or [self.tokenizer.eos_token_id]})
            params.append(self._sampling(**generate_params(req)))
        outputs = self._run(prompts, params)
        if bar is not None:
            bar.update(len(requests))
        return [cut_at_stop(out.outputs[0].text, req.stop) for out, req in zip(outputs, requests)]


def _build(options: BackendOptions, runs: list[ModelArgs]) -> VLLMBackend:
    return VLLMBackend(runs[0], adapter_folders=[a for r in runs for a in r.lora_model])


KIND = BackendKind(name="vllm", summary=f"load the checkpoint into vLLM on the GPU ({INSTALL})",
                   build=_build, preflight=import_vllm)
