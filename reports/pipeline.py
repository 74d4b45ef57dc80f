"""The report's Pipeline section: per base model, each stage's checkpoints, the one the gate
promoted, and its verdict with the deltas it was judged on.

Read from the state file ``aimed-eval pipeline`` writes (``pipeline_state.json`` in its
output root) through the harness's typed reader (:mod:`aimed.harness.verdicts`), which
upgrades a file an older aimed-eval wrote: reports never import the trainers. The rows
built here are shared by the HTML and Markdown renderers.

``load_state`` hands the renderers the upgraded file as plain JSON data (they index it as
``state["lines"]``); the functions here take a line either so, or typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from aimed.harness.gate import change_words
from aimed.harness.verdicts import (STATE_FILE, CheckStatus, Decision, Line, StageRecord, StageVerdict, parse_state,
                                    read_state)

from . import format as fmt

# verdicts in words (the HTML adds a coloured badge by CSS): emoji render as empty boxes
# where no emoji font is installed, and a tick said nothing of what the gate saw
VERDICTS = tuple(v.value for v in StageVerdict)
VERDICT_COLUMN = 6  # in STAGE_HEADER
FIX = "give the pipeline_state.json that `aimed-eval pipeline` wrote in its output_root"

__all__ = ["discover", "load_state", "stage_rows", "line_title", "intro", "STAGE_HEADER", "VERDICTS",
           "VERDICT_COLUMN"]


def discover(db_path: Path) -> Optional[Path]:
    """The pipeline's state file beside the index (the pipeline's default layout), if any."""
    candidate = Path(db_path).parent / STATE_FILE
    return candidate if candidate.is_file() else None


def load_state(path: Path) -> dict:
    """The state file at ``path``, checked and upgraded to the current layout, as JSON data
    (with ``_path``, the file it came from)."""
    state = read_state(Path(path), f"--pipeline {path}", FIX)
    return {**state.to_dict(), "_path": str(path)}


def _typed(line: Union[Line, dict]) -> Line:
    if isinstance(line, Line):
        return line
    return parse_state({"schema_version": 2, "lines": {"line": line}}, "pipeline state", FIX).lines["line"]


def _name(path: Optional[str]) -> str:
    if not path:
        return "–"
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.name.startswith("checkpoint") else p.name


def _checkpoints(rec: StageRecord, promoted: Optional[str]) -> str:
    parts = []
    for c in rec.checkpoints:
        mark = " ★" if promoted and c.path == promoted else ""
        state = "" if c.passed is None else " pass" if c.passed else " fail"
        gain = "" if c.gain is None else f" {fmt.signed(c.gain)}"
        parts.append(f"{Path(c.path).name}{gain}{state}{mark}")
    return ", ".join(parts) or "–"


def _deltas(decision: Decision) -> str:
    rows = decision.checks
    shown = [r for r in rows if r.status == CheckStatus.FAIL or r.promotion] or rows[:3]
    out = []
    for r in shown:
        words = change_words(r.delta, r.p_value, r.alpha, r.higher_is_better)
        out.append(f"{r.task}/{r.metric} {fmt.num(r.baseline)} → {fmt.num(r.candidate)}, {words}")
    return "; ".join(out) or "–"


STAGE_HEADER = ["stage", "from", "training", "eval items in its training data", "checkpoints (gain on rank_by, gate)",
                "promoted", "verdict", "deltas judged", "decision"]


def stage_rows(line: Union[Line, dict]) -> list[list[str]]:
    rows = []
    for stage, rec in _typed(line).stages.items():
        d = rec.decision
        data = rec.data_check.words if rec.data_check else "not checked"
        if d is None:
            rows.append([stage, rec.parent_stage or "–", "–", data, _checkpoints(rec, None), "–", "interrupted", "–",
                         "will be redone on the next run"])
            continue
        rows.append([stage, rec.parent_stage or "–", rec.training or "–", data,
                     _checkpoints(rec, d.promoted_checkpoint), _name(d.promoted_checkpoint), str(d.verdict),
                     _deltas(d), d.summary])
    return rows


def line_title(name: str, line: Union[Line, dict]) -> str:
    line = _typed(line)
    return f"{name}: {line.status.words}" + (f" — {line.reason}" if line.reason else "")


def intro(state: dict) -> str:
    return (f"Gate decisions of the pipeline in {state.get('_path')} (stages: {', '.join(state.get('stages', []))}; "
            "updated " + str(state.get("updated", "–")) + "). Each stage starts from the checkpoint promoted before "
            "it; the gate judges every checkpoint of a stage against that parent and promotes the best one that "
            "passes (★), or stops the base model's line. rm is a side stage: it trains the reward model.")
