"""Score tasks with a backend: build requests, reuse cached answers, compute the rest, score.

Requests are computed in chunks and each chunk's answers are committed to the response
cache before the next starts, so a run killed at any point loses at most one chunk.

A predict_only task (taskspec.py) is asked like any other, but its records get the
prediction alone (``predict_record``): no per-item metric, no summary, no breakdown, and
no judge, rotations or protocol, which all score against an answer the item lacks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Optional

from tqdm.auto import tqdm

from .cache import request_key
from .distributed import current
from .errors import UserError
from .judge.config import JudgeConfig
from .models.backend import Backend
from .models.requests import GenerateRequest, LoglikelihoodRequest
from .prompts import PromptConfig, build_context, continuations, pick_fewshot
from .samples import Sample
from .scoring import circular
from .scoring.extract import split_reasoning
from .scoring.score import by_category, predict, reasoning_traces, sample_from_doc, score_record, summarise
from .taskregistry import Task, UnansweredItem
from .taskspec import Mode, TaskSpec
from .templates import RAW_TEMPLATE, TOKENIZER_TEMPLATE, template_stops

CHUNK = 256  # requests a cache commit


@dataclass
class RunOptions:
    mode: Optional[str] = None  # None: each task's default
    num_fewshot: Optional[int] = None  # None: each task's default
    limit: Optional[int] = None
    seed: int = 1234
    cloze_norm: Optional[str] = None  # None: not asked for; cloze mode then normalises by characters
    progress: bool = True
    circular: Optional[bool] = None  # None: each task's spec says (``circular:``); see scoring/circular.py
    # training files the checkpoint was trained on: each item's overlap is kept in its
    # record and every metric is reported on the clean subset too (scoring/clean.py)
    contamination_data: tuple[str, ...] = ()
    contamination_ngram: Optional[int] = None  # None: the scanner's default
    contamination_threshold: Optional[float] = None
    # a judge scores the outputs with each task's rubric (judge/session.py); None: no judge
    judge: Optional[JudgeConfig] = None


@dataclass
class TaskOutcome:
    task: Task
    mode: str
    num_fewshot: int
    records: list[dict]
    metrics: dict[str, tuple[float, float, int]]
    categories: dict
    n_original: int
    seconds: float
    computed: int  # requests sent to the model (the rest came from the cache)
    cached: int = 0
    extras: dict = field(default_factory=dict)


def task_mode(task: Task, requested: Optional[str]) -> Mode:
    if task.spec.kind == "generation":
        return Mode.GENERATE
    return Mode(requested) if requested else task.spec.mode


def check_options_apply(tasks: list[Task], opts: RunOptions) -> None:
    """A run-wide option that no task of the run uses is refused, never recorded as if it
    applied: ``--mode`` and ``--circular`` need a multiple-choice task (one that is scored:
    a predict_only task's options are not rotated), ``--cloze_norm`` one scored in cloze."""
    listed = ", ".join(t.name for t in tasks)
    if opts.mode and opts.mode != Mode.GENERATE and not any(t.spec.kind == "multiple_choice" for t in tasks):
        raise UserError(f"--mode {opts.mode}: applies to multiple-choice tasks, and {listed} only generate; drop --mode")
    if opts.cloze_norm and not any(task_mode(t, opts.mode) == Mode.CLOZE for t in tasks):
        raise UserError(f"--cloze_norm {opts.cloze_norm}: applies to cloze mode, and no task of this run "
                        "scores in it; pass --mode cloze or drop --cloze_norm")
    if opts.circular and not any(t.spec.kind == "multiple_choice" for t in tasks):
        raise UserError(f"--circular: rotates the options of multiple-choice items, and {listed} only generate; "
                        "drop --circular")
    if opts.circular and not any(is_circular(t, opts) for t in tasks):
        raise UserError(f"--circular: rotates the options of scored multiple-choice items, and {listed} are "
                        "predict_only (no answers to score the rotations against); drop --circular")


def is_circular(task: Task, opts: RunOptions) -> bool:
    """Whether the task's items are scored under every rotation of their options: asked for
    by ``--circular`` or the spec, and only ever for multiple choice."""
    asked = task.spec.circular if opts.circular is None else opts.circular
    # rotations are scored against the answer, which a predict_only task's items lack
    return asked and task.spec.kind == "multiple_choice" and not task.spec.predict_only


def fewshot_pool(task: Task, opts: RunOptions) -> tuple[int, list[Sample]]:
    """(shots a prompt, the examples they are drawn from), refused when there are too few."""
    k = task.spec.num_fewshot if opts.num_fewshot is None else opts.num_fewshot
    pool = task.fewshot_pool() if k else []
    if k and task.spec.predict_only and not task.fewshot_path and len(pool) <= k:
        raise UserError(f"task {task.name!r}: --num_fewshot {k} needs answered examples and its own file has "
                        f"{len(pool)}; set data.fewshot_path in its spec to an answered file (e.g. the val split) "
                        "or lower --num_fewshot")
    if k and len(pool) <= k and not task.fewshot_path:
        raise UserError(f"task {task.name!r}: --num_fewshot {k} needs more than {k} items; lower it")
    if k and len(pool) < k:
        raise UserError(f"task {task.name!r}: --num_fewshot {k} needs {k} examples but {task.fewshot_path} "
                        f"holds {len(pool)}; lower --num_fewshot to {len(pool)} or less")
    return k, pool


def build_requests(task: Task, opts: RunOptions, tokenizer=None,
                   template_name: str = RAW_TEMPLATE) -> tuple[list, list[dict], int, int]:
    """(requests, records without responses, k-shot, items in the file). ``template_name``:
    the run's chat template (``ModelArgs.template_name``, its one source); ``tokenizer``:
    needed for the tokenizer's own template only.

    A circular task's rotated requests follow the published order's (one request per item
    first, so those are exactly a plain run's); each record's ``circular`` list says which
    request answers each rotation (``request``), or, in cloze mode, none: there the context
    does not show the options, so a rotation only reorders the same continuations and its
    scores are the published order's, permuted (``run_task`` fills them)."""
    spec = task.spec
    mode = task_mode(task, opts.mode)
    samples = task.samples()
    n_original = len(samples)
    limit = opts.limit or spec.limit
    if limit:
        samples = samples[:limit]
    k, pool = fewshot_pool(task, opts)
    cfg = PromptConfig(mode=mode, num_fewshot=k, seed=opts.seed, template_name=template_name)
    stops = tuple(spec.generation.stop) + template_stops(template_name)

    def request(item: Sample, shots: list[Sample]) -> tuple[Any, dict]:
        """The item's request and the arguments its record keeps."""
        context = build_context(spec, item, shots, cfg, tokenizer)
        conts = continuations(spec, item, mode)
        if conts is None:
            req = GenerateRequest(context, spec.generation.max_new_tokens, stops)
            return req, {"context": context, "max_new_tokens": req.max_new_tokens, "stop": list(stops)}
        return LoglikelihoodRequest(context, tuple(conts)), {"context": context, "continuations": list(conts)}

    shots_of = [pick_fewshot(pool, s, k, opts.seed, task.name, pool_is_own_file=not task.fewshot_path)
                for s in samples]
    requests, records = [], []
    for i, (sample, shots) in enumerate(zip(samples, shots_of)):
        req, args = request(sample, shots)
        requests.append(req)
        records.append({"doc_id": i, "doc": sample.to_dict(), "target": sample.gold, "mode": mode,
                        "arguments": args})
    if is_circular(task, opts):
        for sample, shots, record in zip(samples, shots_of, records):
            record["circular"] = []
            for r in circular.rotations(sample):
                rotated = circular.rotate(sample, r)
                entry: dict = {"rotation": r, "options": rotated.options}
                if mode != Mode.CLOZE:
                    entry["request"] = len(requests)
                    requests.append(request(rotated, shots)[0])
                record["circular"].append(entry)
    return requests, records, k, n_original


def _request_payload(req: Any) -> tuple[str, Any]:
    # the request kinds of the response cache's keys (cloze asks loglikelihood requests)
    if isinstance(req, LoglikelihoodRequest):
        return "loglikelihood", [req.context, list(req.continuations)]
    return "generate", [req.context, req.max_new_tokens, list(req.stop)]


def compute(backend: Backend, cache, model_fp: str, requests: list, progress: bool,
            desc: str) -> tuple[list, int, list[int]]:
    """Responses for every request, from the cache where possible; (responses, computed,
    computed by each process).

    Under a data-parallel launch each process computes its shard of the missing requests
    and the answers are exchanged at the end, so every process returns them all."""
    procs = current()
    keys = [request_key(*_request_payload(r)) for r in requests]
    found = cache.get_many(model_fp, keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    if procs.size > 1:  # rank 0's view decides the shards, should another run write meanwhile
        todo = procs.gather(todo)[0]
    mine = procs.shard(todo)
    done = len(requests) - len(todo)
    bar = tqdm(total=done + len(mine), initial=done, desc=desc, unit="item",
               disable=not progress or not todo or not procs.is_main, dynamic_ncols=True)
    for start in range(0, len(mine), CHUNK):
        part = mine[start:start + CHUNK]
        batch = [requests[i] for i in part]
        if isinstance(batch[0], LoglikelihoodRequest):
            answers: list = backend.loglikelihood(batch, bar=bar)
        else:
            answers = backend.generate(batch, bar=bar)
        new = {keys[i]: a for i, a in zip(part, answers)}
        cache.put_many(model_fp, new)
        found.update(new)
    bar.close()
    shards = [len(mine)]
    if procs.size > 1:
        parts = procs.gather({keys[i]: found[keys[i]] for i in mine})
        shards = [len(p) for p in parts]
        for answers in parts:
            found.update(answers)
        if missing := [k for k in keys if k not in found]:  # cached for rank 0, not yet read here
            found.update(cache.get_many(model_fp, missing))
    return [found[k] for k in keys], len(todo), shards


def run_task(task: Task, backend: Backend, cache, model_fp: str, opts: RunOptions,
             template_name: str = RAW_TEMPLATE, overlaps: Optional[dict[str, dict]] = None,
             judge: Any = None) -> TaskOutcome:
    """Score one task. ``overlaps``: item id -> its overlap with the checkpoint's training data
    (``training_overlap.check_training_data``), kept in each record so the clean-subset
    metrics are computed (``scoring/clean.py``) and re-scoring keeps them. ``judge``: the
    run's :class:`judge.session.Judge`, which scores the outputs after the rules have."""
    started = time.perf_counter()
    # The tokenizer only renders its own chat template; not asking for it otherwise lets the HF
    # backend skip loading it when every answer is in the response cache (models/hf.py).
    tokenizer = backend.tokenizer if template_name == TOKENIZER_TEMPLATE else None
    requests, records, k, n_original = build_requests(task, opts, tokenizer, template_name)
    responses, computed, shards = compute(backend, cache, model_fp, requests, opts.progress, task.name)
    for record, resp in zip(records, responses):
        record["resps"] = resp
        if overlaps is not None:
            record["contamination"] = overlaps[record["doc"]["id"]]
        for rot in record.get("circular", ()):
            k = len(rot["options"])
            rot["resps"] = (responses[rot.pop("request")] if "request" in rot
                            else [resp[(j + rot["rotation"]) % k] for j in range(k)])
        if task.spec.predict_only:
            predict_record(task.spec, record, opts.cloze_norm or "char")
        else:
            score_record(task.spec, record, opts.cloze_norm or "char")
    extras: dict = {"computed_by_process": shards} if len(shards) > 1 else {}
    # rank 0 alone judges a data-parallel run's outputs; a predict_only task's are not judged
    if judge is not None and current().is_main and not task.spec.predict_only:
        judged = judge.judge_task(task.spec, task.spec_path.parent, records, opts.cloze_norm or "char", task.name)
        if judged:
            extras["judge"] = judged
    # results.json `aimed` records these (results.build_results): rows the data had that were
    # not scored, and how many generated outputs carried a reasoning trace
    if task.skipped_rows:
        extras["skipped_rows"] = list(task.skipped_rows)
    if records[0]["mode"] == Mode.GENERATE:
        extras["reasoning_traces"] = reasoning_traces(records)
    scored = not task.spec.predict_only
    return TaskOutcome(task=task, mode=records[0]["mode"], num_fewshot=k, records=records,
                       metrics=summarise(task.spec, records) if scored else {},
                       categories=by_category(task.spec, records) if scored else {},
                       n_original=n_original, seconds=time.perf_counter() - started,
                       computed=computed, cached=len(requests) - computed, extras=extras)


def predict_record(spec: TaskSpec, record: dict, cloze_norm: str = "char") -> dict:
    """A predict_only task's record: the prediction (``filtered_resps``) alone, in place.
    An item without an answer is read back as an UnansweredItem, so a multi-answer item
    is still chosen as one; an answered item of the split is predicted as any other."""
    doc = record["doc"]
    sample = sample_from_doc(doc) if doc.get("answer") or spec.kind != "multiple_choice" \
        else UnansweredItem.from_doc(doc)
    pred = predict(spec, sample, record["mode"], record["resps"], cloze_norm)
    record["filtered_resps"] = list(pred) if isinstance(pred, tuple) else pred
    if record["mode"] == Mode.GENERATE and isinstance(record["resps"], str) and split_reasoning(record["resps"])[1]:
        record["reasoning_trace"] = True
    return record
