"""LLM-as-judge: open answers scored by a model with a rubric, cached, resumable, re-scorable.

``config`` (which model judges and how it is reached), ``rubric`` (rubric files),
``parse`` (reading a judge's output), ``client`` (asking it), ``asking`` (many prompts:
cache, concurrency, retries), ``session`` (a task's records: pointwise and the
generate-mode cascade), ``pairwise`` (two runs' answers, both orders) and ``agreement``
(the judge against human labels). The public names load lazily: ``scoring`` imports
``judge.metrics``, and the rest imports ``scoring``.
"""

from importlib import import_module

__all__ = ["JudgeConfig", "judge_from_flag", "Rubric", "load_rubric", "Judge", "build_judge", "judge_pairs",
           "PairwiseRow", "Agreement", "agreement_table"]

_HOME = {"JudgeConfig": "config", "judge_from_flag": "config", "Rubric": "rubric", "load_rubric": "rubric",
         "Judge": "session", "build_judge": "client", "judge_pairs": "pairwise", "PairwiseRow": "pairwise",
         "Agreement": "agreement", "agreement_table": "agreement"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
