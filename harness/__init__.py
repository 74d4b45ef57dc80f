"""The AiMed-Eval engine: task registry, model backends, scoring, runs and the CLI.

The Python API is what ``__all__`` lists; every other module is internal and may change::

    from aimed.harness import ModelArgs, RunOptions, evaluate, compare, gate

    run = evaluate(ModelArgs(model="ckpt/sft-200", template_name="vicuna"), ["medqa"],
                   RunOptions(limit=50), output_dir="runs/sft-200")
    print(run.results["results"]["medqa"])
    verdict = gate("runs/sft-200", "runs/base", "docs/gates.example.yaml")
    print(verdict.passed, compare("runs/base", "runs/sft-200").row("cmexam", "acc"))

Names load on first use, so ``import aimed.harness`` stays light (no torch, no task
schema: every command's start-up pays for what it uses alone). ``evaluate``, ``compare``
and ``gate`` share their names with the modules that define them, and importing a
submodule binds it on its package: the package's class declines that binding for those
three, so the function always stands under its name. ``harness`` imports none of the
other top-level packages; built-in tasks and metrics arrive as a plugin through the
``aimed.plugins`` entry point (see ``plugins.py``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# public name -> (module inside aimed.harness, attribute)
_API = {
    # scoring a checkpoint
    "evaluate": ("evaluate", "evaluate"),
    "RunResult": ("evaluate", "RunResult"),
    "RunOptions": ("runner", "RunOptions"),
    "ModelArgs": ("models.args", "ModelArgs"),
    "Mode": ("taskspec", "Mode"),
    # models: loading, chatting, and the backend contract
    "load_model": ("models.loading", "load_model"),
    "ChatModel": ("inference", "ChatModel"),
    "GenerationConfig": ("inference", "GenerationConfig"),
    "Backend": ("models.backend", "Backend"),
    "BackendKind": ("models.backend", "BackendKind"),
    "BackendOptions": ("models.backend", "BackendOptions"),
    "CheckpointInfo": ("models.backend", "CheckpointInfo"),
    "build_backend": ("models.backend", "build_backend"),
    # comparing and gating runs
    "compare": ("compare", "compare_runs"),
    "Comparison": ("compare", "Comparison"),
    "MetricRow": ("compare", "MetricRow"),
    "gate": ("gate", "gate"),
    "Policy": ("gate_policy", "Policy"),
    "load_policy": ("gate_policy", "load_policy"),
    "Verdict": ("gate", "Verdict"),
    # tasks
    "resolve_tasks": ("taskregistry", "resolve_tasks"),
    "UserError": ("errors", "UserError"),
}

__all__ = sorted(_API)
_SHADOWED = ("compare", "evaluate", "gate")  # API functions named as the modules defining them


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return  # the import system binding a submodule: the API's function keeps the name
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'aimed.harness' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
