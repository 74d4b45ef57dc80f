"""The schema of task and group spec files (YAML). Unknown keys are rejected; no spec runs code.

A task spec names its data (a loader for the publisher's format and a path), how items
become prompts, which scoring modes apply and which metrics it reports::

    task: cmexam
    version: 1
    kind: multiple_choice
    description: 以下是中国医师资格考试的选择题，请选出正确答案。
    data:
      loader: cmexam
      path: $AIMED_DATA/cmexam/val.csv
    metrics: [acc, set_f1]

A path that starts with ``$AIMED_DATA/`` is found under the folder that ``AIMED_DATA``
names; any other relative path is relative to the spec file's own folder.

``include: include/cmmlu.yaml`` starts the spec from the keys of another file (relative to
the spec's folder; it may include another in turn); the spec's own keys win, and mappings
(``data:``) merge key by key. The nine CMMLU subjects share theirs this way.

``judge: {rubric: medterm}`` names the rubric a judge scores the task's outputs with when
a run has one (``--judge``); it changes no other number, so the spec's hash leaves it out.

``protocol: cmexam`` adds a benchmark's published scoring beside the strict metrics
(``scoring/protocol.py``). ``on_bad_row: skip`` skips the rows a loader cannot read, with
one warning that lists them (the default, ``error``, refuses the file listing them all).

``predict_only: true`` marks a split whose answers the publisher keeps and scores itself
(CMB-Exam's test split): its items may come without an answer, the model's choices are
made and written to the samples file as for any task, and no metric is computed: such a
spec lists no ``metrics`` (nor ``protocol``, ``circular`` or ``judge``, which all score
against the answer). ``submission: cmb`` names the format (a writer a plugin registers,
``taskregistry.SUBMISSIONS``) in which the run also writes the predictions into the run
folder, as ``submission_<task>.json``, for the publisher's leaderboard. In a normal task an
item without an answer stays an error.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError

class Mode(str, Enum):
    """How a multiple-choice item is scored (generation tasks always generate). A ``str``
    enum: equal to its value, so records and results files keep plain strings."""

    LOGLIKELIHOOD = "loglikelihood"  # the options' summed log-probabilities after the lettered question
    CLOZE = "cloze"  # the option texts as continuations of the bare question, length-normalised
    GENERATE = "generate"  # the model writes its answer; an extractor reads the letters

    def __str__(self) -> str:
        return self.value


MODES = tuple(m.value for m in Mode)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(_Strict):
    """Which columns of a user's CSV/JSONL hold what (the ``table`` loader)."""

    question: str = "question"
    options: Optional[Union[str, list[str]]] = None  # one column "A xx\nB yy", a dict column, or one column a letter
    answer: Optional[str] = "answer"
    target: Optional[str] = None  # generation tasks: the reference text
    id: Optional[str] = None
    categories: list[str] = Field(default_factory=list)


class DataSpec(_Strict):
    loader: str
    path: str
    fewshot_path: Optional[str] = None  # few-shot examples; default: other items of `path`
    columns: Optional[ColumnMap] = None  # `table` loader only
    encoding: str = "utf-8"
    options: dict[str, Union[str, int, float, bool, list[str]]] = Field(default_factory=dict)


class GenerationSpec(_Strict):
    max_new_tokens: int = Field(64, ge=1, le=8192)
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])


class JudgeSpec(_Strict):
    """How a judge reads this task's outputs, when a run has one (``--judge``; judge/session.py)."""

    rubric: Optional[str] = None  # a rubric name (tasks/rubrics/NAME.yaml) or a path relative to the spec
    cascade: bool = True  # generate-mode multiple choice: the judge reads answers the rules cannot


class TaskSpec(_Strict):
    task: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    version: int = 1
    kind: Literal["multiple_choice", "generation"]
    description: str = ""
    data: DataSpec
    # For generation tasks: how the input is put to the model ({input} is the item's text).
    prompt: str = "{input}"
    answer_prefix: str = "答案："
    default_mode: Optional[Mode] = None
    num_fewshot: int = Field(0, ge=0, le=25)
    generation: GenerationSpec = Field(default_factory=GenerationSpec)
    metrics: list[str] = Field(default_factory=list)  # at least one, unless predict_only
    primary_metric: Optional[str] = None
    limit: Optional[int] = Field(None, ge=1)
    protocol: Optional[str] = None  # a published protocol reported beside the metrics
    circular: bool = False  # every item under each rotation of its options (scoring/circular.py)
    judge: Optional[JudgeSpec] = None  # the rubric a judge scores the outputs with (judge/rubric.py)
    on_bad_row: Literal["error", "skip"] = "error"
    predict_only: bool = False  # items without answers: predicted, never scored (see the module doc)
    submission: Optional[str] = None  # predict_only: the publisher's format the predictions are written in

    @property
    def mode(self) -> str:
        if self.default_mode:
            return self.default_mode
        return Mode.LOGLIKELIHOOD if self.kind == "multiple_choice" else Mode.GENERATE

    @property
    def main_metric(self) -> Optional[str]:
        """The headline metric; None for a predict_only task, which has none."""
        return self.primary_metric or (self.metrics[0] if self.metrics else None)


class GroupSpec(_Strict):
    group: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    tasks: list[str] = Field(min_length=1)


Spec = Union[TaskSpec, GroupSpec]


def parse_spec(path: Path) -> Spec:
    """Read and check one spec file; a UserError names the file and the offending field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such spec file; give a task name or the path of a .yaml spec") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; give the path of a .yaml spec file") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(exc.problem or exc.context or "syntax error").split())
        raise UserError(f"{where}: not valid YAML ({what}); fix the file's syntax there") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid UTF-8 YAML ({first}); fix the file's syntax") from None
    if isinstance(raw, dict) and "include" in raw:
        raw = _with_includes(raw, path, ())
    if not isinstance(raw, dict) or not ({"task", "group"} & raw.keys()):
        raise UserError(f"{path}: a spec is a YAML mapping with a 'task' or a 'group' key")
    model = GroupSpec if "group" in raw else TaskSpec
    try:
        spec = model.model_validate(raw)
    except ValidationError as exc:
        # An unknown key first: a misspelt key also shows up as a missing required one.
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(_field_names(model, err["loc"][:-1]))
            raise UserError(f"{path}: unknown key {field!r}; known keys here: {known}") from None
        raise UserError(f"{path}: field {field!r}: {err['msg']}; fix it in the spec") from None
    if isinstance(spec, TaskSpec):
        _check_task(spec, path)
    return spec


MAX_INCLUDES = 8  # deeper than this is a loop or a mistake


def _with_includes(raw: dict, path: Path, chain: tuple[Path, ...]) -> dict:
    """``raw`` laid over the file its ``include:`` names (itself resolved the same way)."""
    ref = raw.pop("include")
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"{path}: include: give the path of a YAML file, e.g. include: include/cmmlu.yaml")
    target = (path.parent / ref).resolve()
    if target in chain or len(chain) >= MAX_INCLUDES:
        raise UserError(f"{path}: include: {ref} includes itself through {' -> '.join(p.name for p in chain)}")
    try:
        base = yaml.safe_load(target.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: include: {ref}: no such file (looked at {target})") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: include: {ref}: not a readable UTF-8 YAML file ({type(exc).__name__})") from None
    if not isinstance(base, dict):
        raise UserError(f"{path}: include: {ref} is not a YAML mapping of spec keys")
    if "include" in base:
        base = _with_includes(base, target, chain + (target,))
    return _merge(base, raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def _field_names(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation
        for cand in getattr(ann, "__args__", (ann,)):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                model = cand
                break
    return sorted(model.model_fields)


def _check_task(spec: TaskSpec, path: Path) -> None:
    if spec.predict_only:
        _check_predict_only(spec, path)
    elif not spec.metrics:
        raise UserError(f"{path}: field 'metrics': list the metrics to report (e.g. metrics: [acc]), or set "
                        "predict_only: true for a split without answers")
    elif spec.submission:
        raise UserError(f"{path}: submission: is written for a predict_only task (a split without answers); "
                        "set predict_only: true or remove submission")
    if spec.primary_metric and spec.primary_metric not in spec.metrics:
        raise UserError(f"{path}: primary_metric {spec.primary_metric!r} is not in metrics {spec.metrics}")
    if spec.kind == "generation" and spec.default_mode not in (None, Mode.GENERATE):
        raise UserError(f"{path}: a generation task scores in 'generate' mode only; remove default_mode")
    if spec.kind == "generation" and spec.circular:
        raise UserError(f"{path}: circular: rotates the options of multiple-choice items, and this task "
                        "generates; remove circular")


def _check_predict_only(spec: TaskSpec, path: Path) -> None:
    """A predict_only task has no answers to score, so nothing in its spec may ask for a score."""
    scoring = [key for key, asked in (("metrics", spec.metrics), ("primary_metric", spec.primary_metric),
                                      ("protocol", spec.protocol), ("circular", spec.circular),
                                      ("judge", spec.judge)) if asked]
    if scoring:
        raise UserError(f"{path}: predict_only: the task's answers are kept by its publisher, so nothing is "
                        f"scored; remove {', '.join(scoring)}")
