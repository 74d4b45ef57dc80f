"""Training under a launcher (``torchrun``, ``accelerate launch``): which process writes what.

Every process of a data-parallel launch runs the same stage: the trainer (transformers'
``Trainer``, through accelerate) gives each process its share of every batch and
averages the gradients, so a step over N processes of batch b is one step of batch N*b.
What a stage writes once (its output folder, the merged parent, checkpoints, their
manifests and scores, the stage marker) the main process writes; the others wait for it
where they need it. A process that fails ends the launch: torchrun and accelerate stop
the others, so a process never waits for one that is gone.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from aimed.harness.distributed import World, launched


def processes() -> World:
    return launched()


def is_main() -> bool:
    return launched().is_main


def _group():
    """torch.distributed, with the launch's process group joined: accelerate's, which the
    trainers use too. (``PartialState()`` alone on a machine without CUDA joins the group
    but calls itself not distributed, and its ``wait_for_everyone`` then waits for no one:
    hence ``cpu=`` and torch's own barrier.)"""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())
    return dist


def barrier() -> None:
    """Every process of the launch waits here for the others (nothing to wait for alone)."""
    if launched().size > 1:
        _group().barrier()


def average_gradients(params) -> None:
    """Each gradient averaged over the launch's processes (a loop of our own, as ``ppo``'s,
    does what DDP does for the trainers); nothing to do alone."""
    size = launched().size
    if size == 1:
        return
    dist = _group()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= size


def average_figures(figures: dict) -> dict:
    """Per-process figures (mean reward, KL) averaged over the launch, so every process steers
    by the same numbers (the adaptive KL coefficient) and the log shows the whole batch's."""
    size = launched().size
    if size == 1:
        return figures
    import torch

    dist = _group()
    keys = sorted(k for k, v in figures.items() if isinstance(v, (int, float)))
    values = torch.tensor([float(figures[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {**figures, **{k: v / size for k, v in zip(keys, values.tolist())}}


def my_share(items: list) -> list:
    """This process's share of a batch: every ``size``-th item, from its rank."""
    procs = launched()
    return items[procs.rank::procs.size]


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (it writes); the others run it once it is done."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
