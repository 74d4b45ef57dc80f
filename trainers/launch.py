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


def barrier() -> None:
    """Every process of the launch waits here for the others (nothing to wait for alone)."""
    if launched().size > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # joins the process group the trainer will use


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (it writes); the others run it once it is done."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()
