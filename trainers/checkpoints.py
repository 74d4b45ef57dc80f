"""Every checkpoint a stage saves gets its manifest and its scores, as soon as it is saved.

:class:`CheckpointScorer` does the work for one stage: ``checkpoint_saved(folder, step)``
writes ``aimed_checkpoint.json`` (only once the folder is completely saved: the manifest is
what marks a checkpoint done) and scores it with the harness on ``eval_tasks``, recording
the run in the results index with its lineage (stage, base_model, parent, step). A
failed evaluation prints one warning line and training goes on.

Stages built on a transformers ``Trainer`` hand it :class:`ScoreOnSave` (a
``TrainerCallback``) through :func:`run_trainer`; a stage with its own loop (PPO) calls
``checkpoint_saved`` itself after each save and ``finish`` at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Optional

from aimed.harness.manifest import MANIFEST, package_versions

from .base import StageConfig, StageResult
from .lineage import Parent
from .progress import use_stage_bar, write

STAGE_MARKER = "aimed_stage.json"  # in output_dir: written last, when the whole stage is done
TRAIN_VERSIONS = ("aimed-eval", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
                  "tokenizers", "bitsandbytes")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def checkpoint_step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[-1])


class CheckpointScorer:
    """Manifests and scores for one stage's checkpoints.

    stage, config, parent: what the stage is and where it starts.
    base_folder: the full-weights folder the stage trains on (for adapter checkpoints, the
        folder the adapter applies on; it is scored as base + adapter).
    adapter: checkpoints are LoRA adapters (True) or full weights (False).
    data: ``{path: examples used}`` of the training files, hashed into each manifest;
        ``{"task:NAME": (data_hash, examples)}`` for harness tasks trained on.
    kind: ``causal_lm`` (scored by the harness) or ``reward_model`` (scored by ``extra_eval``).
    extra_eval: optional ``folder -> dict`` of the stage's own checkpoint figures (the RM's
        pair accuracy), stored in the manifest's ``eval`` and in the stage result.
    """

    def __init__(self, stage: str, config: StageConfig, parent: Parent, base_folder: str, adapter: bool,
                 data: dict, kind: str = "causal_lm", extra_eval: Optional[Callable[[Path], dict]] = None):
        self.stage, self.config, self.parent = stage, config, parent
        self.base_folder, self.adapter, self.kind, self.extra_eval = base_folder, adapter, kind, extra_eval
        self.data = [{"task": str(k)[5:], "sha256": v[0], "examples": v[1]} if str(k).startswith("task:")
                     else {"path": str(Path(k).resolve()), "sha256": file_sha256(Path(k)), "examples": v}
                     for k, v in data.items()]
        self.checkpoints: list[Path] = []
        self.eval_runs: dict = {}
        self.scores: dict = {}  # checkpoint -> {task/metric: value} or the extra_eval figures

    def manifest(self, folder: Path, step: int, metrics: Optional[dict]) -> dict:
        return {
            "format": 1, "stage": self.stage, "base_model": self.parent.base_model,
            "parent": self.parent.path, "parent_stage": self.parent.stage, "step": step,
            "kind": "adapter" if self.adapter else "merged", "adapter": self.adapter,
            "base_folder": self.base_folder if self.adapter else None, "model_kind": self.kind,
            "template_name": self.config.template_name, "finetune": self.config.finetune,
            "train_data": self.data, "train_metrics": metrics or {},
            "config": dataclasses.asdict(self.config), "versions": package_versions(TRAIN_VERSIONS),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def checkpoint_saved(self, folder: Path, step: int, metrics: Optional[dict] = None) -> Optional[Path]:
        """Mark ``folder`` done (its manifest) and score it; returns the run folder or None."""
        folder = Path(folder).resolve()
        manifest = self.manifest(folder, step, metrics)
        if self.extra_eval is not None:
            manifest["eval"] = self._extra(folder)
        write_json_atomic(folder / MANIFEST, manifest)
        if folder not in self.checkpoints:
            self.checkpoints.append(folder)
        scored_here = self.config.eval_tasks and self.kind == "causal_lm" and not self.config.eval_elsewhere
        run_dir = self._score(folder) if scored_here else None
        self.eval_runs[folder] = run_dir
        return run_dir

    def _extra(self, folder: Path) -> dict:
        try:
            figures = self.extra_eval(folder)
        except Exception as exc:  # noqa: BLE001 - a failed evaluation must not stop training
            _warn(f"{folder.name}: evaluation failed ({type(exc).__name__}: {_first_line(exc)}); training goes on")
            return {}
        self.scores[folder] = figures
        write(f"[{self.stage}] {folder.name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items()))
        return figures

    def _score(self, folder: Path) -> Optional[Path]:
        from aimed.harness.evaluate import evaluate
        from aimed.harness.index import default_db, record_run_dir
        from aimed.harness.index_pg import is_pg_url
        from aimed.harness.index_lookup import remember_index
        from aimed.harness.models.args import ModelArgs
        from aimed.harness.runner import RunOptions

        c = self.config
        args = ModelArgs(model=self.base_folder if self.adapter else str(folder),
                         lora_model=[str(folder)] if self.adapter else [], template_name=c.template_name,
                         dtype=c.dtype, only_cpu=c.only_cpu)
        from aimed.harness.judge.config import validate

        judge = validate(c.eval_judge, "eval_judge") if c.eval_judge else None
        opts = RunOptions(mode=c.eval_mode, limit=c.eval_limit, seed=c.seed, progress=False,
                          contamination_data=tuple(c.eval_contamination_data), judge=judge)
        out = folder.parent / "eval" / folder.name
        try:
            result = evaluate(args, list(c.eval_tasks), opts, output_dir=out, use_cache=False, overwrite=True,
                              batch_size="auto")
            db = (c.eval_db if is_pg_url(c.eval_db) else Path(c.eval_db)) if c.eval_db else default_db()
            record_run_dir(db, result.run_dir, result.results)
            remember_index(db)  # leaderboard, report and dashboard find it without --db
        except Exception as exc:  # noqa: BLE001 - said out loud, and training goes on
            _warn(f"{folder.name}: scoring on {','.join(c.eval_tasks)} failed "
                  f"({type(exc).__name__}: {_first_line(exc)}); training goes on")
            return None
        mains = {}
        for o in result.outcomes:
            metric = o.task.spec.main_metric
            if metric in o.metrics:
                mains[f"{o.task.name}/{metric}"] = o.metrics[metric][0]
        self.scores[folder] = mains
        write(f"[{self.stage}] {folder.name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in mains.items())
              + f"  (run {result.run_dir})")
        return result.run_dir

    def finish(self, output_dir: Path, train_metrics: dict) -> StageResult:
        """Write the stage marker (the stage is done) and return its result. Under a launcher
        the main process alone saw the saves and writes the marker; the others read it."""
        from .launch import is_main, main_process_first

        with main_process_first():
            if is_main():
                return self._finish(output_dir, train_metrics)
        return read_stage_result(self.stage, Path(output_dir), train_metrics)

    def _finish(self, output_dir: Path, train_metrics: dict) -> StageResult:
        ckpts = sorted(self.checkpoints, key=checkpoint_step)
        if not ckpts:
            raise RuntimeError(f"stage {self.stage} saved no checkpoint in {output_dir}")
        result = StageResult(self.stage, ckpts, ckpts[-1], train_metrics,
                             {c: self.eval_runs.get(c) for c in ckpts}, {c: self.scores.get(c, {}) for c in ckpts})
        write_json_atomic(Path(output_dir) / STAGE_MARKER, {
            "stage": self.stage, "base_model": self.parent.base_model, "parent": self.parent.path,
            "checkpoints": [str(c) for c in ckpts], "final": str(ckpts[-1]), "train_metrics": train_metrics,
            "eval_runs": {str(c): (str(r) if r else None) for c, r in result.eval_runs.items()},
            "scores": {str(c): s for c, s in self.scores.items()},
        })
        return result


def read_stage_result(stage: str, output_dir: Path, train_metrics: Optional[dict] = None) -> StageResult:
    """The stage's result as its main process recorded it in the marker (another process of
    the launch, or the pipeline after a launched job)."""
    marker = json.loads((output_dir / STAGE_MARKER).read_text(encoding="utf-8"))
    ckpts = [Path(c) for c in marker["checkpoints"]]
    metrics = marker.get("train_metrics", {}) if train_metrics is None else train_metrics
    return StageResult(stage, ckpts, Path(marker["final"]), metrics,
                       {Path(c): (Path(r) if r else None) for c, r in marker["eval_runs"].items()},
                       {Path(c): s for c, s in marker["scores"].items()})


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]


def _warn(message: str) -> None:
    write(f"aimed-eval: warning: {message}", err=True)


def loss_figures(log_history: list[dict], key: str = "loss") -> dict:
    """first/last logged value of ``key`` (the training loss) and the steps trained."""
    values = [(h["step"], h[key]) for h in log_history if key in h]
    out = {"steps": max((h.get("step", 0) for h in log_history), default=0)}
    if values:
        out[f"first_{key}"], out[f"last_{key}"] = float(values[0][1]), float(values[-1][1])
    return out


def make_score_on_save(scorer: CheckpointScorer):
    """A transformers TrainerCallback that hands each saved checkpoint to ``scorer``."""
    from transformers import TrainerCallback

    class ScoreOnSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                logged = [h for h in state.log_history if "loss" in h]
                metrics = {"loss": logged[-1]["loss"]} if logged else {}
                scorer.checkpoint_saved(folder, state.global_step, metrics)
            return control

    return ScoreOnSave()


def run_trainer(trainer, scorer: CheckpointScorer, output_dir: Path, extra_metrics: Optional[dict] = None,
                after: Optional[Callable[[], dict]] = None) -> StageResult:
    """Train with ``trainer`` (every save scored), then mark the stage done.

    ``extra_metrics`` and ``after()`` (figures measured once training is over) join the
    first/last loss in the result's ``train_metrics``."""
    trainer.add_callback(make_score_on_save(scorer))
    use_stage_bar(trainer, scorer.stage, scorer.config.print_logs)
    trainer.train()
    metrics = loss_figures(trainer.state.log_history)
    accuracy = loss_figures(trainer.state.log_history, "mean_token_accuracy")  # trl's SFT: next-token accuracy
    metrics.update({k: v for k, v in accuracy.items() if k != "steps"})
    metrics.update(extra_metrics or {})
    metrics.update(after() if after else {})
    return scorer.finish(output_dir, metrics)


def require_examples(trainer, stage: str, max_length: int) -> None:
    """A trainer whose data preparation dropped every example (too long) is bad input."""
    if len(trainer.train_dataset) == 0:
        from aimed.harness.errors import UserError

        raise UserError(f"{stage}: no training example fits max_length {max_length} tokens; raise max_length")
