"""``aimed-eval score RUN_DIR``: re-score a run's saved outputs without loading the model.

A predict-only task (``cmb_test``: its publisher keeps the answers) gets its predictions
made again as the run made them, and still no metric; its submission file
(``submission_<task>.json``) is written again from them, so the two files agree."""

from __future__ import annotations

import argparse
import json
from contextlib import ExitStack
from pathlib import Path

from ..errors import UserError
from ..flags.judge import add_judge_flags, judge_config, open_judge
from ..help_text import user_help
from ..results import FILTER, atomic_write_many, read_results, regroup, submission_file, task_block
from ..runner import predict_record
from ..scoring.metrics import METRICS
from ..scoring.score import CLOZE_NORMS, by_category, score_record, summarise
from ..taskregistry import SUBMISSIONS
from ..taskspec import TaskSpec
from .summary import print_summary


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="re-score a run folder's saved outputs (no model needed)",
                       description=user_help(__doc__))
    p.add_argument("run_dir", type=Path, help="a run folder `aimed-eval run` wrote (it holds results.json and "
                   "samples_<task>.jsonl); its metrics in results.json are recomputed from the saved outputs")
    p.add_argument("--cloze_norm", choices=CLOZE_NORMS, default=None,
                   help="cloze mode's length normalisation to re-score with (default: the run's own)")
    add_judge_flags(p, "the saved outputs with each task's rubric (judgements already in the cache are not "
                       "asked again); without it, the judgements the run holds are kept", with_cache=True)
    p.set_defaults(func=score)


class _Outcome:  # the shape results.task_block reads
    def __init__(self, name, metrics):
        self.task = type("T", (), {"name": name})
        self.metrics = metrics


def _spec(run_dir: Path, task: str, cfg) -> TaskSpec:
    """The task's spec as the run recorded it in results.json's ``configs``."""
    from pydantic import ValidationError

    if not isinstance(cfg, dict):
        raise UserError(f"{run_dir / 'results.json'}: configs.{task} is not a mapping; the run folder is damaged")
    try:
        return TaskSpec.model_validate({k: v for k, v in cfg.items() if k in TaskSpec.model_fields})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise UserError(f"{run_dir / 'results.json'}: configs.{task}.{field}: {err['msg']}; the run folder "
                        "is damaged, score the checkpoint again") from None


def score(ns: argparse.Namespace) -> int:
    config = judge_config(ns)
    results = read_results(ns.run_dir)
    plugins_loaded()
    norm = ns.cloze_norm or results.get("aimed", {}).get("options", {}).get("cloze_norm", "char")
    rewritten: dict[Path, str] = {}
    with ExitStack() as stack:
        judge = open_judge(config, ns, stack)
        changed, judged = _rescore(ns.run_dir, results, norm, judge, rewritten)
    if judge is not None:
        results.setdefault("aimed", {})["judge"] = {"judge": judge.describe(), "tasks": judged}
    regroup(results)
    rewritten[ns.run_dir / "results.json"] = json.dumps(results, ensure_ascii=False, indent=2)
    atomic_write_many(rewritten, str(ns.run_dir))
    print_summary(results)
    print(f"re-scored {ns.run_dir} ({changed} predictions changed; filter '{FILTER}')")
    return 0


def _records(f: Path) -> list[dict]:
    if not f.is_file():
        raise UserError(f"{f}: missing; the run folder is incomplete")
    records = []
    for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise UserError(f"{f}:{lineno}: not valid JSON; the samples file is damaged") from None
        if not isinstance(records[-1], dict) or "doc" not in records[-1] or "resps" not in records[-1]:
            raise UserError(f"{f}:{lineno}: not a sample record (no 'doc' and 'resps'); the samples "
                            "file is damaged")
    return records


def _rescore(run_dir: Path, results: dict, norm: str, judge, rewritten: dict[Path, str]) -> tuple[int, dict]:
    """Every task's records scored again (and judged, with a judge) into ``rewritten``;
    (predictions changed, what the judge did a task)."""
    changed, judged = 0, {}
    for task, cfg in results["configs"].items():
        spec = _spec(run_dir, task, cfg)
        f = run_dir / f"samples_{task}.jsonl"
        records = _records(f)
        if spec.predict_only:
            changed += _repredict(run_dir, spec, task, records, norm, rewritten)
            rewritten[f] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            continue
        before = [r.get("filtered_resps") for r in records]
        for r in records:
            score_record(spec, r, norm)
        if judge is not None:
            spec_path = results.get("aimed", {}).get("tasks", {}).get(task, {}).get("spec_path")
            done = judge.judge_task(spec, Path(spec_path).parent if spec_path else None, records, norm, task)
            if done:
                judged[task] = done
        changed += sum(b != r["filtered_resps"] for b, r in zip(before, records))
        metrics = summarise(spec, records)
        block = task_block(_Outcome(task, metrics))
        results.setdefault("aimed", {}).setdefault("scored", {})[task] = {m: v[2] for m, v in metrics.items()}
        results.setdefault("higher_is_better", {})[task] = {m: METRICS.get(m).higher_is_better for m in metrics
                                                            if m in METRICS}
        old = results["results"][task]
        results["results"][task] = {**{k: v for k, v in old.items() if "," not in k}, **block}
        cats = by_category(spec, records)
        if cats:
            results.setdefault("aimed", {}).setdefault("categories", {})[task] = cats
        rewritten[f] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return changed, judged


def _repredict(run_dir: Path, spec: TaskSpec, task: str, records: list[dict], norm: str,
               rewritten: dict[Path, str]) -> int:
    """A predict_only task's records predicted again in place by the run's own function
    (``runner.predict_record``: an unanswered item's ``multi_answer`` flag decides how many
    letters it takes, which ``score_record`` would not see), and its submission file
    rewritten from them into ``rewritten`` by the writer the run used; how many predictions
    changed. Its results block, alias only, stays as it is: there is no metric to
    recompute, and a judge scores against answers its items lack."""
    before = [r.get("filtered_resps") for r in records]
    for r in records:
        predict_record(spec, r, norm)
    if spec.submission:
        if spec.submission not in SUBMISSIONS:
            raise UserError(f"{run_dir / 'results.json'}: configs.{task}.submission: unknown format "
                            f"{spec.submission!r}; install the plugin that writes it, or score with the "
                            "aimed-eval that made the run")
        rewritten[run_dir / submission_file(task)] = SUBMISSIONS.get(spec.submission)(records)
    return sum(b != r["filtered_resps"] for b, r in zip(before, records))


def plugins_loaded() -> None:
    from .. import plugins

    plugins.load_plugins()
