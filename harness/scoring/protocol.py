"""Published evaluation protocols: a benchmark's own answer reading and metrics.

A task spec may name ``protocol: <name>``. The harness then scores the task twice: its own
strict metrics (``acc``, ``set_f1``, ...), always, and beside them what the benchmark's
published evaluation code computes on the same outputs, as metrics prefixed with the
protocol's name (``cmexam_acc``, ``cmexam_weighted_f1``, ...). A protocol never replaces
the strict metrics: papers read answers more loosely (any option letter anywhere in the
reply, say), and the two numbers side by side show how much of a score is the reading.

A protocol reads the model's output exactly as the published code would see it (reasoning
traces included: that code does not remove them) and is applied in ``generate`` mode
only, where there is an output to read. It is one module and one registration line::

    register_protocol(Protocol(name="cmexam", source="williamliujl/CMExam ...", read=..., score=...,
                               higher_is_better={"acc": True, ...}))

``read(sample, output)`` is the protocol's reading of one output (kept in the samples as
``<name>_read``); ``score(samples, outputs, readings)`` gives metric -> (value, standard
error, items) for the whole task, in the units the published code prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from ..errors import UserError
from ..registry import Registry
from ..samples import Sample
from .metrics import Metric, register_metric

Scores = dict[str, tuple[float, float, int]]


@dataclass(frozen=True)
class Protocol:
    name: str
    source: str  # where the published code lives: "owner/repo path/to/file.py"
    read: Callable[[Sample, Optional[str]], str]
    score: Callable[[list[Sample], list[Optional[str]], list[str]], Scores]
    higher_is_better: dict[str, bool] = field(default_factory=dict)  # metric (unprefixed) -> direction
    kinds: tuple[str, ...] = ("multiple_choice",)
    description: str = ""

    def metric_names(self) -> list[str]:
        return [f"{self.name}_{m}" for m in self.higher_is_better]

    def apply(self, samples: list[Sample], outputs: list[Optional[str]], readings: list[str]) -> Scores:
        """The protocol's metrics, prefixed with its name."""
        return {f"{self.name}_{k}": v for k, v in self.score(samples, outputs, readings).items()}


PROTOCOLS: Registry[Protocol] = Registry("protocol")


def _reported_only(protocol: str, metric: str):
    def refuse(sample, prediction):
        raise UserError(f"metric {metric!r} is reported by the {protocol!r} protocol; name "
                        f"`protocol: {protocol}` in the spec instead of listing it in metrics")
    return refuse


def register_protocol(protocol: Protocol) -> Protocol:
    """Register a protocol and declare its metrics (so readers of a run know their direction)."""
    PROTOCOLS.add(protocol.name, protocol)
    for short, hib in protocol.higher_is_better.items():
        name = f"{protocol.name}_{short}"
        register_metric(Metric(name, _reported_only(protocol.name, name), higher_is_better=hib,
                               kinds=protocol.kinds, protocol=protocol.name,
                               description=f"{short} as the {protocol.name} protocol computes it ({protocol.source})"))
    return protocol
