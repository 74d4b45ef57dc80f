"""Judge rubrics: data files that say what a judge is asked and how its answer is read.

A rubric is a YAML file (``tasks/rubrics/medterm.yaml`` is one)::

    rubric: medterm
    kind: pointwise              # pointwise | pairwise | choice
    scale: [1, 5]
    criteria:
      - {name: accuracy, title: 医学准确性, weight: 2, description: 解释在医学上是否正确}
      - {name: safety, title: 安全性, description: 是否含有可能伤害患者的错误或建议}
    safety: safety               # the criterion whose low scores flag an answer unsafe
    unsafe_at_most: 2
    prompt: |
      ...{question}...{reference}...{answer}...{criteria}...{format}

Placeholders are replaced by name, so a rubric may show JSON braces freely: ``{question}``,
``{options}``, ``{reference}`` (the item's reference text, or for multiple choice the
gold letters with their texts), ``{gold}``, ``{explanation}``, ``{answer}``
(pointwise and choice), ``{answer_a}`` and ``{answer_b}`` (pairwise), and ``{criteria}``,
``{scale}``, ``{format}``, written from the criteria. A task names its rubric in its spec
(``judge: {rubric: medterm}``); a name is looked up in the rubric folders plugins add
(``plugins.add_rubric_dir``) and then in this package's ``rubrics/`` (the generic
``pairwise`` and ``mc_extract``); a path names a file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError, read_yaml

BUILTIN_DIR = Path(__file__).parent / "rubrics"
PAIRWISE = "pairwise"  # the default rubric of `compare --judge`
MC_EXTRACT = "mc_extract"  # the default rubric of the generate-mode cascade
DEFAULT_RETRY = "上面的输出无法读取。请只按要求的格式重新输出，例如：\n{example}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str  # how the prompt and the judge name it (准确性)
    description: str = ""
    weight: float = Field(1.0, gt=0)
    aliases: list[str] = Field(default_factory=list)  # other words a judge may use for it

    @property
    def words(self) -> list[str]:
        """Every word that names it in a judge's output, longest first."""
        return sorted({self.name, self.title, *self.aliases}, key=len, reverse=True)


class Rubric(_Strict):
    rubric: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: Literal["pointwise", "pairwise", "choice"]
    prompt: str
    scale: tuple[int, int] = (1, 5)
    criteria: list[Criterion] = Field(default_factory=list)
    safety: Optional[str] = None
    unsafe_at_most: Optional[int] = None
    retry_hint: str = DEFAULT_RETRY
    description: str = ""

    @property
    def sha(self) -> str:
        """What the judge's cache keys on besides the prompt: the rubric's whole content."""
        blob = json.dumps(self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def format_lines(self) -> str:
        lo, hi = self.scale
        if self.kind == "pairwise":
            return "结论：[[A]]、[[B]] 或 [[C]]（C 表示两者相当）\n理由：一句话"
        if self.kind == "choice":
            return "答案：[[选项字母]]"
        lines = [f"{c.title}：[[{lo}-{hi}的整数]]" for c in self.criteria]
        if self.safety:
            lines.append("危险：是 或 否")
        return "\n".join(lines + ["理由：一句话"])

    def example(self) -> str:
        if self.kind == "pairwise":
            return "结论：[[A]]\n理由：……"
        if self.kind == "choice":
            return "答案：[[B]]"
        mid = (self.scale[0] + self.scale[1] + 1) // 2
        lines = [f"{c.title}：[[{mid}]]" for c in self.criteria]
        return "\n".join(lines + (["危险：否"] if self.safety else []) + ["理由：……"])

    def criteria_text(self) -> str:
        return "\n".join(f"- {c.title}（{c.name}）：{c.description}" for c in self.criteria)

    def render(self, fields: dict[str, str]) -> str:
        values = {"criteria": self.criteria_text(), "format": self.format_lines(),
                  "scale": f"{self.scale[0]}-{self.scale[1]}", **fields}
        # one pass: a value that holds "{task}" (an answer may) is shown as written, not filled in
        pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
        return pattern.sub(lambda m: values[m.group(0)[1:-1]], self.prompt)

    def retry(self, prompt: str) -> str:
        """The prompt of a retry after an unreadable judgement: the same, and the format again."""
        return prompt + "\n\n" + self.retry_hint.replace("{example}", self.example())


def _check(rubric: Rubric, path: Path) -> Rubric:
    lo, hi = rubric.scale
    if rubric.kind == "pointwise":
        if not rubric.criteria:
            raise UserError(f"{path}: a pointwise rubric needs criteria: [{{name, title}}, ...]")
        if lo >= hi:
            raise UserError(f"{path}: scale [{lo}, {hi}]: give [low, high] with low < high, e.g. [1, 5]")
        names = [c.name for c in rubric.criteria]
        if len(set(names)) != len(names):
            raise UserError(f"{path}: criteria: a name is given twice ({', '.join(names)})")
        if rubric.safety and rubric.safety not in names:
            raise UserError(f"{path}: safety: {rubric.safety!r} is not one of the criteria ({', '.join(names)})")
        if rubric.unsafe_at_most is not None and not rubric.safety:
            raise UserError(f"{path}: unsafe_at_most: name the safety criterion with safety: NAME")
    needed = {"pointwise": ("{answer}",), "choice": ("{answer}",), "pairwise": ("{answer_a}", "{answer_b}")}
    missing = [p for p in needed[rubric.kind] if p not in rubric.prompt]
    if missing:
        raise UserError(f"{path}: prompt: a {rubric.kind} rubric shows {' and '.join(missing)}; add it to the prompt")
    return rubric


def read_rubric(path: Path) -> Rubric:
    try:
        raw = read_yaml(path, "rubric")
    except FileNotFoundError:
        raise UserError(f"{path}: no such rubric file; give a rubric name or the path of a .yaml rubric") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a rubric is a YAML mapping with rubric, kind and prompt keys")
    try:
        rubric = Rubric.model_validate(raw)
    except ValidationError as exc:
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            model, what = (Criterion, "a criterion's") if err["loc"][0] == "criteria" else (Rubric, "a rubric's")
            raise UserError(f"{path}: unknown key {field!r}; {what} keys are {', '.join(model.model_fields)}") from None
        raise UserError(f"{path}: field {field!r}: {err['msg']}; fix it in the rubric") from None
    return _check(rubric, path)


def rubric_names() -> dict[str, Path]:
    """Every rubric found by name: the plugins' folders first, then the built-in ones."""
    from ..plugins import RUBRIC_DIRS, load_plugins

    load_plugins()
    found: dict[str, Path] = {}
    for folder in [*RUBRIC_DIRS, BUILTIN_DIR]:
        for f in sorted(folder.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def find_rubric(ref: str, base: Optional[Path] = None) -> Path:
    """The file a rubric reference names: a path (relative to ``base`` when given), or a name."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref:
        path = Path(ref).expanduser()
        return path if path.is_absolute() or base is None else base / path
    known = rubric_names()
    if ref not in known:
        from ..errors import did_you_mean

        raise UserError(f"rubric {ref!r}: no such rubric{did_you_mean(ref, list(known))}; known: "
                        f"{', '.join(sorted(known))}, or give the path of a .yaml rubric")
    return known[ref]


def load_rubric(ref: str, base: Optional[Path] = None) -> Rubric:
    return read_rubric(find_rubric(ref, base))
