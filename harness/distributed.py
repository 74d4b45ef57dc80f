"""Data-parallel scoring: each process scores a shard of the requests, rank 0 writes the run.

Launched by ``torchrun`` or ``accelerate launch --multi_gpu`` (both set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``), several processes
run the same ``aimed-eval run`` command. Each builds the same requests, looks them up in
the response cache, scores every ``world``-th of the ones still missing (strided, so the
shards get similar lengths), commits its answers to the cache as it goes, and then the
answers are exchanged with ``all_gather_object``, so every process holds them all in
the original order. Only rank 0 writes the run folder and the index record.

On the CPU, ``accelerate launch --cpu`` starts one process (it needs MPI for more), so
launch CPU processes with ``accelerate launch --multi_gpu --num_processes N`` (accelerate's
torchrun path, which works without GPUs) or ``torchrun --nproc_per_node N``.

With no launcher (``WORLD_SIZE`` unset or 1) nothing here touches torch.distributed and
a run is the plain single-process one; the ``evaluate`` API is single-process unless its
caller joined through ``world()`` (``aimed-eval run`` does). The process group is gloo (only
small Python objects cross it); on GPUs each process scores on ``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import UserError

TIMEOUT = timedelta(minutes=60)  # a rank waits this long for a slow peer before giving up


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This process's share of ``items``: every ``size``-th, from ``rank``."""
        return items[self.rank::self.size]

    def gather(self, part: Any) -> list:
        """Every process's ``part``, in rank order (one object a rank)."""
        if self.size == 1:
            return [part]
        import torch.distributed as dist

        out: list = [None] * self.size
        dist.all_gather_object(out, part)
        return out


_WORLD: World | None = None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise UserError(f"${name}={value!r}: the launcher set a bad value; launch with torchrun or accelerate launch")
    return int(value)


def current() -> World:
    """The processes that ``world()`` joined, else this process alone. Library callers of
    ``evaluate`` (a trainer under its own launcher) stay single-process: only
    ``aimed-eval run`` joins a process group."""
    return _WORLD or World()


def launched() -> World:
    """This process's place in a ``torchrun`` / ``accelerate launch`` (from the launcher's
    environment), whether or not a process group is joined: trainers join theirs through
    accelerate, and need to know beforehand which process writes what."""
    if _WORLD is not None:
        return _WORLD
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    return World(rank=_env_int("RANK", 0), size=size, local_rank=_env_int("LOCAL_RANK", 0))


def world() -> World:
    """The processes of this run; joins the process group on first use."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        _WORLD = World()
        return _WORLD
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
        # gloo even on GPUs: only small Python objects (the answers) cross processes
        dist.init_process_group("gloo", rank=rank, world_size=size, timeout=TIMEOUT)
    _WORLD = World(rank=rank, size=size, local_rank=local_rank)
    return _WORLD


def finish(ok: bool = True) -> None:
    """Leave the process group; ``ok``: after the run's last collective call, so wait for the
    others first (on an error the peers may never arrive)."""
    global _WORLD
    if _WORLD is not None and _WORLD.size > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            if ok:
                dist.barrier()
            dist.destroy_process_group()
    _WORLD = None
