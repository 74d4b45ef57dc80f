"""Export tasks as lm-evaluation-harness 0.4.13 task configs whose prompts are ours.

For every task this writes ``<prefix><task>.yaml`` and its data ``data/<prefix><task>.jsonl``
into one folder, and ``<prefix><group>.yaml`` for every group the tasks came from; run them
with ``lm_eval --include_path DIR --tasks <prefix><task> ...``.

Same prompts by construction
    Each exported doc carries ``prompt``: the context that ``runner.build_requests`` builds
    for the item (description, few-shot examples with their answers, chat template), so
    the text lm-eval puts to the model is the text ``aimed-eval run`` puts to it. Few-shot
    examples are baked into ``prompt``, so the config says ``num_fewshot: 0`` and
    ``description: ""``; do not pass ``--num_fewshot`` (lm-eval would add its own shots
    from the test split on top) nor ``--apply_chat_template`` (the template, if any, is
    already in the prompt). ``doc_to_text``/``doc_to_choice``/``doc_to_target`` name doc
    fields rather than Jinja templates, so lm-eval returns them verbatim (no rendering, no
    ``ast.literal_eval`` of a rendered list).

Multiple choice, ``loglikelihood`` mode
    ``output_type: multiple_choice``; the choices are the option letters and
    ``target_delimiter: ""`` because our letter follows ``答案：`` directly; metric ``acc``.
``cloze`` mode
    The choices are the option texts; ``acc`` is our ``--cloze_norm none`` and ``acc_norm``
    (log-likelihood / number of *characters* of the choice, in 0.4.13) is our
    ``--cloze_norm char``, the default. Our ``token`` normalisation has no lm-eval metric.
``generate`` mode (multiple choice)
    ``generate_until`` with our stop strings and max tokens; the target is the gold letters
    (all of them: ``"ACD"``) and ``exact_match`` is taken after a regex filter that keeps the
    first run of option letters, so a multi-answer item needs the exact set, as ours does.
    Our extractor (``scoring.extract``) understands more answer phrasings, so the two
    accuracies are close, not equal.

Multi-answer items (``loglikelihood`` and ``cloze``)
    lm-eval's ``multiple_choice`` scores one chosen option per item. A task with any
    multi-answer item is exported with ``gold`` as a *list* of gold indices for every doc
    (lm-eval decides "multiple targets" from the first doc only, and a JSON column must
    keep one type), and lm-eval's multiple-target ``acc`` then means "the argmax option
    is one of the gold answers". Our ``acc`` asks for the exact set (``scoring.choose``
    picks every option whose probability share reaches 1/k), so **on multi-answer items
    lm-eval's accuracy differs from ours** (it is more lenient). Single-answer items
    agree exactly. Each YAML says so in a comment.

Generation tasks
    ``generate_until`` with the prompt and the reference text as target. Our ROUGE-1/2/L,
    BLEU-4 and char-F1 (jieba segmentation, rouge-chinese) are ours: lm-eval's ``rouge``
    needs the hub. The config reports sacrebleu's chrF, which is character-based and so
    means something for Chinese (sacrebleu's BLEU, with its default 13a tokeniser, does
    not segment Chinese); compare the generated texts, not the numbers.

Predict-only tasks (``cmb_test``)
    Refused, naming them: their items have no answers (the publisher scores submissions
    itself), and every lm-eval metric scores a doc against its target.

Tokenisation
    ``aimed-eval run`` encodes without special tokens. lm-eval 0.4.13's HF model
    (``add_bos_token=None`` by default) uses the *tokenizer's* default, which prepends BOS
    for Llama-family tokenizers; pass ``add_bos_token=False`` in ``--model_args`` to score
    the same token ids as we do (``LM_EVAL_MODEL_ARGS``). Also pass ``dtype=float32`` (or
    the dtype of the run you compare with).

Data location
    ``dataset_kwargs.data_files`` holds the *absolute* path of the JSONL: lm-eval 0.4.13
    hands ``dataset_kwargs`` to ``datasets.load_dataset`` unchanged, which resolves a
    relative path against the current directory, not the YAML's folder. Moving the folder
    means exporting again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import UserError
from .models.requests import LoglikelihoodRequest
from .owned import check_target, write_marker
from .runner import RunOptions, build_requests
from .scoring import circular
from .scoring.score import sample_from_doc
from .taskregistry import Task, group_tree, resolve_tasks
from .templates import RAW_TEMPLATE, TOKENIZER_TEMPLATE
from .taskspec import MODES, Mode

DEFAULT_PREFIX = "aimed_"
LM_EVAL_MODEL_ARGS = "add_bos_token=False"
# The first run of option letters in a generated answer (exact_match after this filter).
LETTER_REGEX = r"([A-J]+)"

MULTI_ANSWER_NOTE = (
    "Multi-answer items: `gold` lists every gold index and lm-eval's acc counts the item\n"
    "as right when the argmax option is ONE of them. aimed-eval's acc asks for the exact set\n"
    "of answers, so on multi-answer items lm-eval's accuracy differs from (is more lenient\n"
    "than) aimed-eval's. Single-answer items score the same."
)


@dataclass
class ExportedTask:
    name: str  # the lm-eval task name (prefixed)
    source: str  # the aimed task name
    mode: str
    num_fewshot: int  # baked into the prompts
    n_docs: int
    n_multi_answer: int
    yaml_path: Path
    data_path: Path
    n_rotated: int = 0  # of n_docs, the rotated copies of a circular export (ids <id>@rot<r>)


@dataclass
class ExportResult:
    out_dir: Path
    tasks: list[ExportedTask] = field(default_factory=list)
    groups: dict[str, Path] = field(default_factory=dict)  # lm-eval group name -> yaml

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def command(self, model: str = "<MODEL>", tasks: Optional[list[str]] = None) -> str:
        names = tasks or (list(self.groups)[-1:] if self.groups else self.task_names)
        return (f"HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m lm_eval --model hf "
                f"--model_args pretrained={model},{LM_EVAL_MODEL_ARGS},dtype=float32 "
                f"--include_path {self.out_dir} --tasks {','.join(names)} "
                f"--batch_size auto --log_samples --output_path <OUT>")


_TMP = f".tmp-{os.getpid()}"  # two exports into one folder at once never share a temporary


def _check_prefix(prefix: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]*", prefix):
        raise UserError(f"--prefix {prefix!r}: use letters, digits, '_', '.' or '-' only")


def export(names: str | list[str], out_dir: Path, mode: Optional[str] = None,
           num_fewshot: Optional[int] = None, limit: Optional[int] = None, seed: int = 1234,
           template_name: str = RAW_TEMPLATE, tokenizer: Any = None,
           prefix: str = DEFAULT_PREFIX, circular: Optional[bool] = None) -> ExportResult:
    """Write lm-eval task (and group) YAMLs plus JSONL data for ``names`` into ``out_dir``."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if mode is not None and mode not in MODES:
        raise UserError(f"--mode {mode}: use one of {', '.join(MODES)}")
    _check_prefix(prefix)
    tasks = resolve_tasks(names)
    unanswered = [t.name for t in tasks if t.spec.predict_only]
    if unanswered:  # before any file is read or written: lm-eval scores every doc against its answer
        raise UserError(f"--tasks: {', '.join(unanswered)} {'is' if len(unanswered) == 1 else 'are'} predict_only "
                        "(the publisher keeps the answers), so lm-eval has nothing to score "
                        f"{'it' if len(unanswered) == 1 else 'them'} against; export the other tasks")
    groups = group_tree(names)
    if template_name == TOKENIZER_TEMPLATE and tokenizer is None:  # before the folder is made
        raise UserError("--template_name tokenizer: pass --tokenizer_path (or --model) so the "
                        "tokenizer's chat template can be rendered")
    # an existing folder is written into only when an earlier export made it
    check_target(Path(out_dir), what="--out", kind="export", overwrite=True)
    out_dir = Path(out_dir).expanduser().resolve()
    if circular and not any(t.spec.kind == "multiple_choice" for t in tasks):
        raise UserError(f"--circular: rotates the options of multiple-choice items, and "
                        f"{', '.join(t.name for t in tasks)} only generate; drop --circular")
    opts = RunOptions(mode=mode, num_fewshot=num_fewshot, limit=limit, seed=seed, progress=False, circular=circular)
    result = ExportResult(out_dir=out_dir)
    created = not out_dir.exists()
    try:
        (out_dir / "data").mkdir(parents=True, exist_ok=True)
        write_marker(out_dir, "export")
        for task in tasks:
            result.tasks.append(_export_task(task, opts, template_name, out_dir, prefix, tokenizer))
        for gname, members in groups.items():
            result.groups[prefix + gname] = _export_group(gname, members, result, groups, out_dir, prefix)
    except OSError as exc:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        for tmp in [*out_dir.glob(f"*{_TMP}"), *out_dir.glob(f"data/*{_TMP}")]:
            tmp.unlink(missing_ok=True)
        raise UserError(f"--out {out_dir}: cannot write the export ({exc.strerror or exc}); free some space or "
                        "choose a folder you can write to") from None
    return result


# ---- one task ---------------------------------------------------------------------------

def _docs(task: Task, records: list[dict], mode: str) -> tuple[list[dict], int]:
    """The JSONL docs and how many are multi-answer."""
    kind = task.spec.kind
    any_multi = kind == "multiple_choice" and any(len(r["doc"]["answer"]) > 1 for r in records)
    docs, n_multi = [], 0
    for r in records:
        d = r["doc"]
        args = r["arguments"]
        doc: dict[str, Any] = {"doc_id": r["doc_id"], "id": str(d["id"]), "prompt": args["context"]}
        if kind == "generation":
            doc["target"] = d["target"]
        else:
            letters = list(d["options"])
            gold = [letters.index(a) for a in d["answer"]]
            n_multi += len(gold) > 1
            doc["answer"] = "".join(d["answer"])
            doc["multi_answer"] = len(gold) > 1
            if mode == Mode.GENERATE:
                doc["target"] = doc["answer"]
            else:
                doc["choices"] = list(args["continuations"])
                doc["gold"] = gold if any_multi else gold[0]
        docs.append(doc)
    return docs, n_multi


def _rotated_records(records: list[dict], requests: list) -> list[dict]:
    """A circular export's rotated items, as records of their own (id ``<id>@rot<r>``): lm-eval
    then scores every rotation, and its ``acc`` is the mean over rotations (aimed-eval's
    ``acc_circular``, right under every rotation, needs the items grouped: score that here)."""
    out = []
    for r in records:
        for rot in r.get("circular", ()):
            doc = {**r["doc"], "id": f"{r['doc']['id']}@rot{rot['rotation']}", "options": rot["options"]}
            doc["answer"] = list(circular.rotate(sample_from_doc(r["doc"]), rot["rotation"]).answer)
            if "request" in rot:
                req = requests[rot["request"]]
                args = {**r["arguments"], "context": req.context}
                if isinstance(req, LoglikelihoodRequest):
                    args["continuations"] = list(req.continuations)
            else:  # cloze: the same context, the option texts in the rotated order
                args = {**r["arguments"], "continuations": list(rot["options"].values())}
            out.append({"doc_id": len(records) + len(out), "doc": doc, "arguments": args})
    return out


def _task_config(task: Task, name: str, mode: str, k: int, opts: RunOptions, template_name: str,
                 data_path: Path, records: list[dict]) -> dict:
    spec = task.spec
    cfg: dict[str, Any] = {
        "task": name,
        "task_alias": task.name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_path)}},
        "test_split": "test",
        "num_fewshot": 0,
        "description": "",
        "doc_to_text": "prompt",
    }
    if spec.kind == "multiple_choice" and mode in (Mode.LOGLIKELIHOOD, Mode.CLOZE):
        cfg.update({
            "output_type": "multiple_choice",
            "doc_to_choice": "choices",
            "doc_to_target": "gold",
            "target_delimiter": "",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        })
        if mode == Mode.CLOZE:
            cfg["metric_list"].append({"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True})
    else:
        stops = records[0]["arguments"]["stop"] if records else list(spec.generation.stop)
        cfg.update({
            "output_type": "generate_until",
            "doc_to_target": "target",
            "target_delimiter": "",
            "generation_kwargs": {"until": list(stops), "max_gen_toks": spec.generation.max_new_tokens,
                                  "do_sample": False, "temperature": 0.0},
        })
        if spec.kind == "generation":
            cfg["metric_list"] = [{"metric": "chrf", "aggregation": "chrf", "higher_is_better": True}]
        else:
            cfg["metric_list"] = [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]
            cfg["filter_list"] = [{"name": "letters", "filter": [
                {"function": "regex", "regex_pattern": LETTER_REGEX, "fallback": "[invalid]"},
                {"function": "take_first"}]}]
    cfg["metadata"] = {
        "version": float(spec.version),
        "aimed_task": task.name,
        "aimed_mode": mode,
        "aimed_num_fewshot": k,
        "aimed_seed": opts.seed,
        "aimed_template_name": template_name,
        "aimed_spec_hash": task.spec_hash,
        "aimed_data_hash": task.data_hash,
    }
    return cfg


def _header(task: Task, name: str, mode: str, k: int, n_docs: int, n_multi: int, n_rotated: int = 0) -> str:
    lines = [
        f"lm-evaluation-harness 0.4.13 task exported by `aimed-eval export-lm-eval` from {task.name!r}",
        f"(mode {mode}, {n_docs} items). Prompts are aimed-eval's own, built by runner.build_requests:",
        f"{k} few-shot example(s) and any chat template are already inside `prompt`, hence",
        "num_fewshot: 0 -- do not pass --num_fewshot or --apply_chat_template to lm_eval.",
        f"Score the same tokens as aimed-eval with --model_args pretrained=...,{LM_EVAL_MODEL_ARGS}",
        "(aimed-eval adds no BOS; lm-eval 0.4.13 otherwise uses the tokenizer's default).",
        "data_files is absolute: datasets resolves a relative one against the current directory.",
    ]
    if n_rotated:
        lines += [f"CircularEval: {n_rotated} of the docs are the items with their options rotated (id <id>@rot<r>);",
                  "lm-eval's acc is then the mean over rotations, not aimed-eval's acc_circular."]
    if task.spec.kind == "generation":
        lines += ["Generation: aimed-eval's ROUGE / BLEU-4 / char-F1 are computed by aimed-eval only",
                  "(lm-eval's rouge needs the hub); chrF here is sacrebleu's and is not comparable."]
    elif mode == Mode.GENERATE:
        lines += ["generate mode: exact_match after a regex that keeps the first run of option letters;",
                  "aimed-eval's answer extractor is richer, so the accuracies are close, not equal."]
    if n_multi and mode == Mode.GENERATE:
        lines += [f"{n_multi} multi-answer item(s): the target is every gold letter (\"ACD\") and exact_match",
                  "asks for that exact string, i.e. the exact set, as aimed-eval's acc does."]
    elif n_multi:
        lines += [f"{n_multi} multi-answer item(s)."] + MULTI_ANSWER_NOTE.splitlines()
    elif task.spec.kind == "multiple_choice":
        lines += ["No multi-answer items: lm-eval's acc and aimed-eval's acc count the same thing."]
    return "".join(f"# {ln}\n" for ln in lines)


class _Dumper(yaml.SafeDumper):
    """Strings with line breaks or other control characters come out double-quoted ("\\n\\n")."""


def _str(dumper: yaml.SafeDumper, s: str):
    style = '"' if any(ord(c) < 32 for c in s) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)


def _dump_yaml(path: Path, header: str, cfg: dict) -> None:
    body = yaml.dump(cfg, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)
    tmp = path.with_name(path.name + _TMP)
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)


def _export_task(task: Task, opts: RunOptions, template_name: str, out_dir: Path, prefix: str,
                 tokenizer) -> ExportedTask:
    requests, records, k, _ = build_requests(task, opts, tokenizer, template_name)
    mode = str(records[0]["mode"] if records else task.spec.mode)  # a plain string for the YAML
    name = prefix + task.name
    rotated = _rotated_records(records, requests)
    docs, n_multi = _docs(task, records + rotated, mode)
    data_path = out_dir / "data" / f"{name}.jsonl"
    tmp = data_path.with_name(data_path.name + _TMP)
    with tmp.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    tmp.replace(data_path)
    cfg = _task_config(task, name, mode, k, opts, template_name, data_path, records)
    yaml_path = out_dir / f"{name}.yaml"
    _dump_yaml(yaml_path, _header(task, name, mode, k, len(docs), n_multi, len(rotated)), cfg)
    return ExportedTask(name=name, source=task.name, mode=mode, num_fewshot=k, n_docs=len(docs),
                        n_multi_answer=n_multi, yaml_path=yaml_path, data_path=data_path, n_rotated=len(rotated))


# ---- groups -----------------------------------------------------------------------------

def _leaf_metrics(name: str, result: ExportResult, groups: dict[str, list[str]], prefix: str) -> set[str]:
    if name in groups:
        sets = [_leaf_metrics(m, result, groups, prefix) for m in groups[name]]
        return set.intersection(*sets) if sets else set()
    t = next(t for t in result.tasks if t.source == name)
    cfg = yaml.safe_load(t.yaml_path.read_text(encoding="utf-8"))
    return {m["metric"] for m in cfg.get("metric_list", [])}


def _export_group(gname: str, members: list[str], result: ExportResult, groups: dict[str, list[str]],
                  out_dir: Path, prefix: str) -> Path:
    """A group YAML; it aggregates (size-weighted, as aimed-eval does) the metrics all its
    leaves share, and none when they share none (e.g. medqa: acc tasks and chrF tasks)."""
    shared = sorted(_leaf_metrics(gname, result, groups, prefix))
    cfg: dict[str, Any] = {"group": prefix + gname, "group_alias": gname,
                           "task": [prefix + m for m in members]}
    if shared:
        cfg["aggregate_metric_list"] = [{"metric": m, "aggregation": "mean", "weight_by_size": True}
                                        for m in shared]
    cfg["metadata"] = {"version": 1.0, "aimed_group": gname}
    header = (f"# lm-evaluation-harness 0.4.13 group exported by `aimed-eval export-lm-eval` from {gname!r}.\n"
              "# Its members are the exported tasks (and groups) in this folder.\n")
    path = out_dir / f"{prefix}{gname}.yaml"
    _dump_yaml(path, header, cfg)
    return path
