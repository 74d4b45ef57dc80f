"""Which model judges, and how it is asked: ``--judge`` on run/score/compare, ``judge:`` in a
pipeline config.

``--judge`` takes one of:

- an OpenAI-compatible endpoint, ``http://127.0.0.1:8000/v1`` (``aimed-eval serve``, vLLM,
  SGLang, a commercial API); ``--judge_model`` names the served model when there are several;
- a local checkpoint folder or hub id, loaded here (the ``hf`` backend);
- a YAML file with the keys of :class:`JudgeConfig`::

      base_url: https://api.example.com/v1
      model: judge-large
      api_key_env: JUDGE_API_KEY   # the key is read from this variable, never stored
      concurrency: 8

The API key is only ever read from the environment variable the config names (default
``OPENAI_API_KEY``), so it appears in no results file, index row or report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError, read_yaml

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class JudgeConfig(BaseModel):
    """A judge: the model, the way to reach it, and how hard to try."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Optional[str] = None  # the served id (None: the endpoint's only model), or a folder / hub id
    base_url: Optional[str] = None  # set: an OpenAI-compatible endpoint; unset: model is loaded here
    api: Literal["chat", "completions"] = "chat"  # endpoints: chat completions, or the prompt as text
    api_key_env: Optional[str] = None  # the variable that holds the key (default OPENAI_API_KEY)
    template_name: str = "raw"  # local judges and api: completions: how the prompt is wrapped
    max_new_tokens: int = Field(256, ge=1, le=8192)
    concurrency: int = Field(4, ge=1, le=256)
    max_retries: int = Field(5, ge=0, le=50)  # HTTP retries (429, 5xx, timeouts), with backoff
    timeout: float = Field(120.0, gt=0)  # seconds a request may take
    parse_retries: int = Field(2, ge=0, le=10)  # asks again after an unreadable judgement
    rubric: Optional[str] = None  # overrides every task's own rubric
    cascade: bool = True  # generate-mode multiple choice: the judge reads answers the rules cannot
    only_cpu: bool = False

    @property
    def backend(self) -> str:
        return "openai" if self.base_url else "hf"

    def api_key(self) -> Optional[str]:
        """The key from the environment (never from the config file itself)."""
        name = self.api_key_env or DEFAULT_KEY_ENV
        value = os.environ.get(name)
        if self.api_key_env and not (value or "").strip():
            raise UserError(f"judge: api_key_env {name}: the variable is not set; export {name}=KEY or drop "
                            "api_key_env for an endpoint without a key")
        return value or None

    def describe(self) -> dict:
        """What a run records of its judge: everything but secrets (there are none here)."""
        return self.model_dump(mode="json", exclude_none=True)


def _from_yaml(path: Path) -> dict:
    raw = read_yaml(path, "judge config")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a judge config is a YAML mapping, e.g. base_url: http://127.0.0.1:8000/v1")
    return raw


def validate(raw: dict, where: str) -> JudgeConfig:
    """``raw`` checked; a mistake is one line naming ``where`` and the key."""
    if "api_key" in raw:
        raise UserError(f"{where}: api_key: keys are not written in configs (they would be recorded); put it in "
                        f"an environment variable and name it with api_key_env: VAR")
    try:
        return JudgeConfig.model_validate(raw)
    except ValidationError as exc:
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            raise UserError(f"{where}: unknown key {key!r}; a judge's keys are "
                            f"{', '.join(JudgeConfig.model_fields)}") from None
        raise UserError(f"{where}: {key}: {err['msg']}; fix it") from None


def judge_from_flag(value: str, model: Optional[str] = None, rubric: Optional[str] = None,
                    concurrency: Optional[int] = None) -> JudgeConfig:
    """The judge ``--judge VALUE`` names, with ``--judge_model/--judge_rubric/--judge_concurrency``."""
    value = value.strip()
    if not value:
        raise UserError("--judge is empty; give an endpoint URL, a checkpoint folder or a judge .yaml")
    if value.startswith(("http://", "https://")):
        raw: dict = {"base_url": value, "model": model}
    elif value.endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise UserError(f"--judge {value}: no such judge config file; give an endpoint URL, a checkpoint "
                            "folder or the path of a judge .yaml")
        raw = _from_yaml(path)
        if model:
            raw["model"] = model
        value = str(path)
    else:
        raw = {"model": value}
        if model:
            raise UserError(f"--judge_model: names a model served at an endpoint; --judge {value} is loaded here")
    if rubric:
        raw["rubric"] = rubric
    if concurrency is not None:
        if concurrency < 1:
            raise UserError(f"--judge_concurrency {concurrency}: give 1 or more")
        raw["concurrency"] = concurrency
    raw = {k: v for k, v in raw.items() if v is not None}
    return validate(raw, f"--judge {value}")
