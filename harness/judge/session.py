"""A run's judge at work on one task's records: the pointwise rubric, then the cascade.

Which rubric judges a task: ``--judge_rubric`` (the judge config's ``rubric``) for every
task, else the task spec's ``judge: {rubric: NAME}``; a task with neither is not judged
pointwise. Pointwise judging reads generated text: generation tasks, and multiple-choice
tasks in generate mode (their explanations). The cascade asks the judge which option an
answer chose where the rule-based extractor found none (generate-mode multiple choice;
off with ``cascade: false`` in the judge config or the spec's ``judge:``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..scoring.score import score_record
from ..taskspec import Mode, TaskSpec
from .asking import JudgeStats, ask_all
from .client import JudgeClient
from .config import JudgeConfig
from .parse import read_choice, read_pointwise
from .records import fill_choice, fill_pointwise, item_fields
from .rubric import MC_EXTRACT, Rubric, load_rubric


def task_rubric(config: JudgeConfig, spec: TaskSpec, spec_dir: Optional[Path]) -> Optional[Rubric]:
    """The pointwise rubric that judges ``spec``'s outputs, or None (checked before any model
    work, so a misnamed rubric fails first)."""
    ref = config.rubric or (spec.judge.rubric if spec.judge else None)
    if not ref:
        return None
    rubric = load_rubric(ref, spec_dir if not config.rubric else None)
    if rubric.kind != "pointwise":
        where = "--judge_rubric" if config.rubric else f"task {spec.task}: judge: rubric"
        raise UserError(f"{where} {ref}: {rubric.rubric} is a {rubric.kind} rubric; a task is judged with a "
                        "pointwise one (e.g. medterm)")
    return rubric


class Judge:
    """The judge of a run: a client, the run's response cache, whether to show progress."""

    def __init__(self, config: JudgeConfig, client: JudgeClient, cache, progress: bool = True):
        self.config, self.client, self.cache, self.progress = config, client, cache, progress

    def describe(self) -> dict:
        return self.client.describe()

    def judge_task(self, spec: TaskSpec, spec_dir: Optional[Path], records: list[dict], cloze_norm: str = "char",
                   desc: str = "judge") -> Optional[dict]:
        """Judge ``records`` in place (and re-score them); what was done, for results.json."""
        if not records:
            return None
        generated = spec.kind == "generation" or records[0]["mode"] == Mode.GENERATE
        summary: dict = {}
        total = JudgeStats()
        rubric = task_rubric(self.config, spec, spec_dir)
        if rubric is not None and generated:
            prompts = [rubric.render(item_fields(r, spec.description or spec.task)) for r in records]
            judged, stats = ask_all(self.client, self.cache, rubric, prompts, lambda i, text: read_pointwise(text, rubric),
                                    progress=self.progress, desc=f"{desc} (judge)")
            for record, j in zip(records, judged):
                fill_pointwise(record, j, rubric)
            summary["rubric"] = {"name": rubric.rubric, "sha": rubric.sha, "scale": list(rubric.scale),
                                 "criteria": [c.name for c in rubric.criteria]}
            total.add(stats)
        elif rubric is not None:
            summary["skipped"] = f"{records[0]['mode']} mode has no text to judge; score with --mode generate"
        cascade = self.config.cascade and (spec.judge.cascade if spec.judge else True)
        if cascade and spec.kind == "multiple_choice" and records[0]["mode"] == Mode.GENERATE:
            # the items the rules read no answer from (and those the judge read before: a re-judge)
            unread = [r for r in records if not r.get("filtered_resps") or "judge_read" in r]
            extract = load_rubric(MC_EXTRACT)
            docs = [r["doc"] for r in unread]
            judged, stats = ask_all(
                self.client, self.cache, extract, [extract.render(item_fields(r, spec.description or spec.task)) for r in unread],
                lambda i, text: read_choice(text, docs[i].get("options") or {}, len(docs[i].get("answer", [])) > 1),
                progress=self.progress, desc=f"{desc} (cascade)")
            for record, j in zip(unread, judged):
                fill_choice(record, j, extract)
            summary["cascade"] = {"rubric": extract.rubric, "sha": extract.sha, "asked_for": len(unread),
                                  "read": sum(bool(j.reading) for j in judged)}
            total.add(stats)
        if not summary:
            return None
        for record in records:  # the cascade's letters, and the clean subset's copies of judge metrics
            score_record(spec, record, cloze_norm)
        return {**summary, **total.to_dict()}

