"""The backend contract: what a run asks of a model engine, and the registry that builds one.

A backend is one module exposing ``KIND`` (a :class:`BackendKind`) and one entry-point line
under ``aimed.backends`` in its package's metadata::

    [project.entry-points."aimed.backends"]
    tgi = "my_package.tgi_backend:KIND"

Every backend, ``hf`` included, is built the same way: ``build_backend(name, options, runs)``
loads the entry point (only the one asked for: ``hf`` imports torch, ``vllm`` needs a GPU),
runs its ``preflight`` (a missing extra is one line with the install command), refuses the
engine flags it does not take, and calls its ``build``. The runner then needs nothing
beyond :class:`Backend`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

from ..errors import UserError
from .args import ModelArgs
from .requests import ContinuationScore, GenerateRequest, LoglikelihoodRequest

GROUP = "aimed.backends"
DEFAULT_BACKEND = "hf"


@dataclass
class CheckpointInfo:
    """What a run records of the model it scored and what its fingerprint is made of.

    ``model_folder`` is None for a model behind a server (``device`` then names the URL);
    ``max_length`` is known once the model is loaded (None: not yet, or the server's)."""

    model_folder: Optional[str]
    adapter_folders: list[str] = field(default_factory=list)
    device: str = "cpu"
    dtype: str = "float32"
    max_length: Optional[int] = None
    served_fingerprint: Optional[str] = None  # what a server says identifies its weights

    def to_dict(self) -> dict:
        return asdict(self)


# Hashes a folder's files into one fingerprint (with the run's memo of files hashed before).
HashFolder = Callable[[Path], str]


class Backend(Protocol):
    """The methods the runner (``runner.py``) and ``evaluate.py`` call.

    ``loglikelihood`` and ``generate`` take a batch of requests and advance ``bar`` (a tqdm
    bar, or None) by one a request as answers come; answers are in request order.
    ``tokenizer`` is asked for only when prompts use the tokenizer's own chat template
    (``--template_name tokenizer``). ``use_adapter`` switches the loaded base to another
    LoRA adapter of it (``run --lora_model a,b,c``). ``fingerprint`` names the exact model a
    response came from: the response cache and the results index key on it, so two
    backends give the same fingerprint only where they would give the same answers.

    (Not ``runtime_checkable``: an isinstance check would read ``tokenizer``, which loads it.)"""

    name: str
    info: CheckpointInfo

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest], bar: Any = None) -> list[list[ContinuationScore]]: ...

    def generate(self, requests: Sequence[GenerateRequest], bar: Any = None) -> list[str]: ...

    @property
    def tokenizer(self) -> Any: ...

    def use_adapter(self, folder: str) -> None: ...

    def fingerprint(self, args: ModelArgs, hash_folder: HashFolder) -> str: ...


@dataclass(frozen=True)
class BackendOptions:
    """The engine flags of ``run`` (``cli/backend_flags.py``); a backend reads those it takes.
    None: not given (the backend's default)."""

    batch_size: str = "auto"
    base_url: Optional[str] = None
    api_key: Optional[str] = None
    concurrency: int = 8
    max_retries: int = 5
    request_timeout: float = 120.0

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> "BackendOptions":
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


@dataclass(frozen=True)
class BackendKind:
    """One engine, as its module declares it.

    ``build(options, runs)`` returns the backend for ``runs`` (the model arguments of each
    run: one adapter each when ``run --lora_model a,b,c``; the first is active at the start).
    ``takes``: the optional flags of :class:`BackendOptions` it reads (others given are
    refused); ``local_weights``: ``--model`` is a folder or hub id loaded here, so several
    adapters become several runs; ``data_parallel``: it can score a shard in each process
    of an ``accelerate launch``."""

    name: str
    summary: str
    build: Callable[[BackendOptions, list[ModelArgs]], Backend]
    preflight: Optional[Callable[[], None]] = None
    takes: frozenset[str] = frozenset({"batch_size"})
    local_weights: bool = True
    data_parallel: bool = False


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def backend_names() -> list[str]:
    """Every installed backend's name, without importing any of them."""
    return sorted(_entry_points(), key=lambda n: (n != DEFAULT_BACKEND, n))


def backend_kind(name: str) -> BackendKind:
    eps = _entry_points()
    if name not in eps:
        raise UserError(f"--backend {name}: no such backend; choose one of {', '.join(backend_names())}")
    try:
        kind = eps[name].load()
    except ImportError as exc:
        raise UserError(f"--backend {name}: its module {eps[name].value} cannot be imported ({exc}); "
                        "reinstall the package that provides it") from None
    if not isinstance(kind, BackendKind):
        raise UserError(f"--backend {name}: entry point {eps[name].value} is not a BackendKind")
    return kind


OPTION_FLAGS = {"base_url": "--base_url", "api_key": "--api_key"}  # optional flags a backend may not take


def check_options(kind: BackendKind, options: BackendOptions) -> None:
    """A flag that the chosen backend would ignore is refused, not recorded and dropped."""
    for attr, flag in OPTION_FLAGS.items():
        if getattr(options, attr) is not None and attr not in kind.takes:
            users = [n for n in backend_names() if n != kind.name and attr in _takes(n)]
            where = f"--backend {' or '.join(users)}" if users else "another backend"
            raise UserError(f"{flag} is for {where}; add it or drop {flag}")


def _takes(name: str) -> frozenset[str]:
    try:
        return backend_kind(name).takes
    except UserError:  # a broken plugin says so when it is chosen, not here
        return frozenset()


def build_backend(name: str, options: BackendOptions, runs: list[ModelArgs]) -> Backend:
    kind = backend_kind(name)
    if kind.preflight:
        kind.preflight()
    check_options(kind, options)
    return kind.build(options, runs)
