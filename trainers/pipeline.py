"""``aimed-eval pipeline``: PT → SFT → RM → PPO → DPO (or a subset) for each base model,
with the gate between stages.

A *line* is one base model's run through the stages. It starts with the base model's own
scores; each policy stage then trains from the line's tip (the last promoted checkpoint),
every checkpoint it saves is scored as it is saved (the trainers do that), and the gate
(:mod:`pipeline_gate`) promotes the best checkpoint against the parent's scores or stops
the line. A side stage (its recipe says so; ``rm``) trains from the tip too, but its last
checkpoint becomes the reward model of the stages that need one and the tip stays where
it was.

Lines are independent: a gate that stops one, or a bad data file in one, does not stop
the others. The state file (:mod:`pipeline_state`) is rewritten after every step, so a
rerun of the same pipeline.yaml skips every stage whose result and gate decision are
recorded, redoes an interrupted one, and redoes a stage whose settings (its keys, the
eval tasks, its gate policy) changed, with every stage after it.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError
from aimed.harness.sweep import Status
from aimed.harness.verdicts import CheckpointRecord, Line, LineStatus, RecordStatus, StageRecord, Tip

from .base import REWARD_KEY
from .pipeline_config import BaseModelSpec, PipelineConfig
from .pipeline_data import check_stage_data, lineage_files, refused
from .pipeline_gate import gate_stage, side_decision
from .pipeline_scoring import ScoringService, say_result
from .pipeline_state import PipelineState

BASE_EVAL = "base-eval"


@dataclass
class PipelineOutcome:
    state: PipelineState
    trained: list[tuple[str, str]]   # (base model, stage) trained in this call, in order

    @property
    def lines(self) -> dict[str, Line]:
        return self.state.lines

    @property
    def exit_code(self) -> int:
        """0: every line done; 1: a gate stopped a line; 2: a line failed on bad input."""
        statuses = {line.status for line in self.lines.values()}
        return 2 if LineStatus.ERROR in statuses else 1 if LineStatus.STOPPED in statuses else 0


def say(message: str) -> None:
    print(message, flush=True)


def quiet_libraries() -> None:
    """Keep the stage's own progress bars and figures; drop the libraries' deprecation
    warnings and per-file load/save bars, which say nothing about the pipeline."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*")
    try:
        import datasets
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        datasets.disable_progress_bars()  # trl's tokenizing and filtering passes
    except ImportError:  # the training extra is not installed: train_stage will say so
        pass


def run_pipeline(config: PipelineConfig) -> PipelineOutcome:
    quiet_libraries()
    from aimed.harness.index_lookup import remember_index

    service = None
    if config.scoring.elsewhere:  # an unreachable cluster is said before anything is written
        try:
            service = ScoringService(config.scoring, config.index_db, config.output_root)
        except UserError as exc:
            raise UserError(f"{config.path}: {exc.message}") from None
        say(f"checkpoints are scored beside training on the {service.describe()}")
    trained: list[tuple[str, str]] = []
    try:
        state = PipelineState.open(config.state_file, config.path, config.index_db, config.stages)
        config.output_root.mkdir(parents=True, exist_ok=True)
        state.save()
        remember_index(config.index_db)  # leaderboard, report and dashboard find it without --db
        for base in config.base_models:
            line = state.line(base.name, base.model)
            try:
                _run_line(config, state, base, line, trained, service)
            except UserError as exc:  # this line's input is bad; the other lines go on
                line.status, line.reason = LineStatus.ERROR, exc.message
                state.save()
                print(f"aimed-eval: error: [{base.name}] {exc.message}", file=sys.stderr, flush=True)
    except BaseException:
        if service is not None:
            service.close(interrupted=True)  # Ctrl-C: its workers stop; what was recorded stays
        raise
    if service is not None:
        service.close()
    return PipelineOutcome(state, trained)


def _template(config: PipelineConfig, base: BaseModelSpec) -> str:
    first = config.stage_keys(base, config.stages[0])
    return str(first.get("template_name", "raw"))


def _base_scoring(config: PipelineConfig, base: BaseModelSpec):
    """What scoring the base model takes: (model, options, meta)."""
    from aimed.harness.models.args import ModelArgs
    from aimed.harness.runner import RunOptions

    keys = config.stage_keys(base, config.stages[0])
    args = ModelArgs(model=base.model, template_name=_template(config, base), dtype=str(keys.get("dtype", "auto")),
                     only_cpu=bool(keys.get("only_cpu", False)))
    opts = RunOptions(mode=config.eval_mode, limit=config.eval_limit, seed=int(keys.get("seed", 42)),
                      progress=False, judge=config.judge)
    return args, opts, {"stage": "base", "base_model": base.name}


def score_base(config: PipelineConfig, base: BaseModelSpec) -> Path:
    """The base model's scores on the eval tasks, recorded as stage ``base`` of its line."""
    from aimed.harness.evaluate import evaluate
    from aimed.harness.index import record_run_dir

    args, opts, meta = _base_scoring(config, base)
    out = config.output_root / base.name / BASE_EVAL
    result = evaluate(args, list(config.eval_tasks), opts, output_dir=out, use_cache=False, overwrite=True,
                      meta=meta)
    record_run_dir(config.index_db, result.run_dir, result.results)
    return result.run_dir


class _BaseRun:
    """The base model's run: scored now (inline), or a job whose result the first gate waits for."""

    def __init__(self, config: PipelineConfig, state: PipelineState, base: BaseModelSpec, line: Line,
                 service: Optional[ScoringService]):
        self.line, self.state, self.service, self.job = line, state, service, None
        if line.base_run and (Path(line.base_run) / "results.json").is_file():
            return
        where = f" on the {service.describe()}; training goes on" if service else ""
        say(f"[{base.name}] scoring the base model {base.model} on {','.join(config.eval_tasks)}{where} ...")
        if service is None:
            line.base_run = str(score_base(config, base))
            state.save()
            return
        args, opts, meta = _base_scoring(config, base)
        self.job = service.submit(BASE_EVAL, args, list(config.eval_tasks), opts, config.output_root / base.name,
                                  meta, on_done=lambda r: say_result(f"[{base.name}] base model", r))

    def run_dir(self) -> str:
        """The base run's folder, once its job (if any) has finished."""
        if self.job is not None:
            result, self.job = self.service.wait(self.job), None
            if result.status is Status.FAILED:
                raise UserError(f"scoring the base model failed ({result.reason}); the gate has nothing to compare "
                                "with, so the line stops here")
            self.line.base_run = result.run_dir
            self.state.save()
        return self.line.base_run


def _run_line(config: PipelineConfig, state: PipelineState, base: BaseModelSpec, line: Line,
              trained: list, service: Optional[ScoringService] = None) -> None:
    name = base.name
    line.status, line.reason = LineStatus.RUNNING, ""
    base_run = _BaseRun(config, state, base, line, service)
    line.current = Tip("base", base.model, line.base_run)
    retrained = False  # once a stage is (re)trained, the stages after it start from a new parent
    for stage in config.stages:
        record = state.stage(line, stage)
        digest = config.stage_hash(base, stage)
        done = record is not None and record.status == RecordStatus.DONE and record.decision is not None
        if done and record.hash == digest and not retrained:
            say(f"[{name}] {stage}: done earlier: {record.decision.summary}")
        else:
            if done:
                why = "its settings changed" if record.hash != digest else "a stage before it was retrained"
                say(f"[{name}] {stage}: redoing it, {why}")
            names = list(line.stages)
            for later in names[names.index(stage):] if stage in names else []:
                del line.stages[later]  # decided from a parent that is no longer the line's
            record = _run_stage(config, state, base, line, stage, digest, service, base_run)
            trained.append((name, stage))
            retrained = True
        decision = record.decision
        if config.recipes[stage].side:
            line.reward_model = decision.promoted_checkpoint
        elif decision.go_on:
            line.current = Tip(stage, decision.promoted_checkpoint, decision.promoted_run)
        if not decision.go_on:
            base_run.run_dir()  # its job, when nothing waited for it, is recorded before the line ends
            line.status, line.reason = LineStatus.STOPPED, f"{stage}: {decision.summary}"
            state.save()
            say(f"[{name}] line stopped at {stage}: the gate did not promote a checkpoint; the other "
                "base models go on")
            return
    base_run.run_dir()
    line.status = LineStatus.DONE
    state.save()


def _run_stage(config: PipelineConfig, state: PipelineState, base: BaseModelSpec, line: Line, stage: str,
               digest: str, service: Optional[ScoringService], base_run: _BaseRun) -> StageRecord:
    from . import stages

    out = config.output_root / base.name / stage
    if out.exists():  # an interrupted or outdated attempt: its checkpoints and their runs go
        from aimed.harness.index import forget_runs_under
        from aimed.harness.owned import check_target

        check_target(out, what="stage folder", kind="stage", overwrite=True)  # never a folder not ours
        forget_runs_under(config.index_db, out)
        shutil.rmtree(out)
    parent, recipe = line.current, config.recipes[stage]
    keys = dict(config.stage_keys(base, stage))
    keys.setdefault("print_logs", False)  # the pipeline prints each stage's summary instead
    if recipe.needs_reward_model and REWARD_KEY not in keys:
        keys[REWARD_KEY] = line.reward_model
    keys.update(model=parent.checkpoint, output_dir=str(out), base_model=base.name,
                eval_tasks=list(config.eval_tasks) if not recipe.side else [],
                eval_limit=config.eval_limit, eval_mode=config.eval_mode, eval_db=str(config.index_db),
                eval_judge=config.judge.model_dump(exclude_none=True) if config.judge else None,
                eval_elsewhere=service is not None)
    record = StageRecord(RecordStatus.RUNNING, digest, time.time(), None, parent.checkpoint, parent.stage,
                         parent.run_dir, str(out))
    files = lineage_files(config, base, line, stage) if not recipe.side and config.eval_tasks else []
    if files:  # before training: the data against the eval items (pipeline_data.py)
        policy = config.policy_for(stage)
        record.data_check = check_stage_data(config, files, policy)
        keys["eval_contamination_data"] = record.data_check.files
        say(f"[{base.name}] {stage}: training data checked: {record.data_check.words}")
        record.decision = refused(record.data_check, policy)
    stage_config = stages.load_stage_config(stage, None, keys)
    line.stages[stage] = record
    if record.decision is not None:  # refused before any compute was spent
        record.status, record.finished = RecordStatus.DONE, time.time()
        state.save()
        say(f"[{base.name}] {stage}: gate: {record.decision.summary}")
        return record
    state.save()
    launcher = config.launchers.get(stage)
    how = f" as a {launcher.command} job ({' '.join(launcher.args)})" if launcher else ""
    say(f"[{base.name}] {stage}: training from {parent.stage} ({_short(parent.checkpoint)}){how} ...")
    scored_beside = service is not None and not recipe.side and bool(config.eval_tasks)
    with _watcher(config, base, stage, keys, service if scored_beside else None) as watcher:
        if launcher is not None:
            from .launcher import launch_stage

            result = launch_stage(stage, keys, launcher, out)
        else:
            result = stages.train_stage(stage, stage_config)
    if watcher is not None:  # the gate waits for every checkpoint's scores, and the parent's
        jobs = watcher.finish([Path(c) for c in result.checkpoints])
        say(f"[{base.name}] {stage}: training done; the gate waits for the scores of {len(jobs)} checkpoint(s) ...")
        result.eval_runs = {Path(c): _run_of(service, jobs.get(Path(c).resolve())) for c in result.checkpoints}
    if line.current.stage == "base":
        line.current = Tip("base", base.model, base_run.run_dir())
        parent = line.current
        record.parent_run = parent.run_dir
    record.train_metrics = _jsonable(result.train_metrics)
    record.training = training(record.train_metrics)
    if recipe.side:
        scores = getattr(result, "scores", None) or {}
        record.checkpoints = [CheckpointRecord(str(c), scores=_jsonable(scores.get(c, {}))) for c in result.checkpoints]
        record.decision = side_decision(stage, Path(result.final), _jsonable(scores.get(result.final, {})))
    else:
        record.checkpoints, record.decision = gate_stage(
            [Path(c) for c in result.checkpoints], {Path(c): r for c, r in result.eval_runs.items()},
            Path(parent.run_dir), config.policy_for(stage), out)
    record.status, record.finished = RecordStatus.DONE, time.time()
    state.save()
    # the verdict in words, as the summary begins (no tick that a drop could stand beside)
    say(f"[{base.name}] {stage}: trained ({record.training}); gate: {record.decision.summary}")
    return record


def _watcher(config: PipelineConfig, base: BaseModelSpec, stage: str, keys: dict,
             service: Optional[ScoringService]):
    """A StageWatcher handing the stage's checkpoints to ``service`` while it trains, scored
    as the stage itself would score them (``keys``: the stage's keys, its contamination
    files included), or nothing (``with`` gives None) when the stage scores its own."""
    from contextlib import nullcontext

    if service is None:
        return nullcontext()
    from aimed.harness.runner import RunOptions

    from .pipeline_scoring import StageWatcher, checkpoint_model

    out = Path(keys["output_dir"])
    opts = RunOptions(mode=config.eval_mode, limit=config.eval_limit, seed=int(keys.get("seed", 42)),
                      progress=False, contamination_data=tuple(keys.get("eval_contamination_data", ())),
                      judge=config.judge)

    def submit(folder: Path, manifest: dict) -> int:
        said = f"[{base.name}] {stage} {folder.name}"
        return service.submit(folder.name, checkpoint_model(folder, manifest), list(config.eval_tasks), opts,
                              out / "eval", {"stage": stage, "base_model": base.name},
                              on_done=lambda result: say_result(said, result))

    return StageWatcher(out, submit)


def _run_of(service: ScoringService, job: Optional[int]) -> Optional[Path]:
    """The run folder of a checkpoint's job once it has finished; None: it failed (said as
    it did) or never had a manifest, so it was never scored."""
    result = service.wait(job) if job is not None else None
    return Path(result.run_dir) if result and result.status is not Status.FAILED and result.run_dir else None


def training(metrics: dict) -> str:
    """The stage's own figures, first → last: ``loss 7.02 → 1.69``, ``reward 0.36 → 0.56``."""
    parts = []
    for key, value in metrics.items():
        for head, tail in (("first_", ""), ("train_", "_before")):
            if key.startswith(head) and key.endswith(tail) and isinstance(value, (int, float)):
                name = key[len(head):len(key) - len(tail) or None]
                last = metrics.get(f"last_{name}" if head == "first_" else f"train_{name}_after")
                if isinstance(last, (int, float)):
                    parts.append(f"{name.replace('_', ' ')} {value:.4g} → {last:.4g}")
    steps = metrics.get("steps")
    return ", ".join(([f"{steps} steps"] if steps else []) + parts) or "–"


def _short(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def summary_lines(outcome: PipelineOutcome) -> list[str]:
    """One block a base model: each stage's verdict and promoted checkpoint."""
    out = []
    for name, line in outcome.lines.items():
        out.append(f"{name}: {line.status.words}" + (f" ({line.reason})" if line.reason else ""))
        for stage, rec in line.stages.items():
            d = rec.decision
            if d is None:
                out.append(f"  {stage:<4} interrupted (will be redone)")
                continue
            ck = d.promoted_checkpoint or d.candidate
            out.append(f"  {stage:<4} {d.verdict:<13} {_short(ck) if ck else '—':<20} {d.summary}")
            out.append(f"  {'':<4} {'':<13} {'':<20} trained: {rec.training or '—'}")
    return out
