"""What a training stage shows while it runs: one progress bar (step, elapsed < time left,
the latest loss) and lines written above it.

transformers' own bar is not used: ``TrainingArguments`` turns it off by itself whenever the
library's log level is above WARNING (``disable_tqdm`` left unset), and the pipeline sets
that level to quiet the libraries, so the demo and pipeline showed nothing for a whole
stage. :func:`use_stage_bar` swaps transformers' bar and printer callbacks for
:class:`StageBar`, which is always on. Every line printed while a bar may be on screen
goes through :func:`write` (``tqdm.write``), so that it lands above the bar instead of
being glued onto it.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

# the figures a bar shows after the step counter, those a stage logs (trl's online stages log a reward)
BAR_FIGURES = ("loss", "reward")


def write(message: str, err: bool = False) -> None:
    """``print`` that keeps an open progress bar intact (above it, not glued onto it)."""
    tqdm.write(message, file=sys.stderr if err else sys.stdout)
    (sys.stderr if err else sys.stdout).flush()


def stage_bar(stage: str, total: int, unit: str = "step"):
    """The bar of one stage: ``sft:  33%|███   | 30/90 [00:04<00:08, 7.1step/s, loss=3.12]``."""
    return tqdm(total=total, desc=stage, unit=unit, dynamic_ncols=True, file=sys.stderr)


def logged_figures(logs: dict) -> dict:
    """A log dict as transformers' printer shows it: floats to 4 significant digits."""
    return {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in logs.items() if k != "total_flos"}


def make_stage_bar(stage: str, print_logs: bool):
    """A transformers ``TrainerCallback`` drawing the stage's bar; with ``print_logs`` it also
    writes each logged step's figures above the bar (what transformers' bar does)."""
    from transformers import TrainerCallback

    class StageBar(TrainerCallback):
        def __init__(self):
            self.bar = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                self.bar = stage_bar(stage, state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.bar is None or not logs:
                return
            shown = {k: f"{logs[k]:.4g}" for k in BAR_FIGURES if isinstance(logs.get(k), (int, float))}
            if shown:
                self.bar.set_postfix(shown)
            if print_logs:
                self.bar.write(str(logged_figures(logs)), file=sys.stdout)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return StageBar()


def use_stage_bar(trainer, stage: str, print_logs: bool) -> None:
    """Replace ``trainer``'s own bar or log printer (whichever ``disable_tqdm`` chose) by the stage's bar."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for theirs in (ProgressCallback, PrinterCallback):
        while trainer.pop_callback(theirs) is not None:
            pass
    trainer.add_callback(make_stage_bar(stage, print_logs))
