"""The report's Pipeline section: per base model, each stage's checkpoints, the one the gate
promoted, and its verdict with the deltas it was judged on.

Read from the state file ``aimed-eval pipeline`` writes (``pipeline_state.json`` in its
output root, layout in ``trainers/pipeline_state.py``) as plain JSON: reports never import
the trainers. The rows built here are shared by the HTML and Markdown renderers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from aimed.harness.errors import UserError
from aimed.harness.gate import change_words

from . import format as fmt

STATE_FILE = "pipeline_state.json"
# verdicts in words (the HTML adds a coloured badge by CSS): emoji render as empty boxes
# where no emoji font is installed, and a tick said nothing of what the gate saw
VERDICTS = ("promoted", "not promoted", "failed", "reward model")
VERDICT_COLUMN = 5  # in STAGE_HEADER
LINE_STATUS = {"done": "done", "stopped": "stopped by the gate", "error": "failed", "running": "unfinished",
               "pending": "not started"}


def discover(db_path: Path) -> Optional[Path]:
    """The pipeline's state file beside the index (the pipeline's default layout), if any."""
    candidate = Path(db_path).parent / STATE_FILE
    return candidate if candidate.is_file() else None


def load_state(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--pipeline {path}: no such file; give the pipeline_state.json in the pipeline's output_root")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"--pipeline {path}: not valid JSON ({exc}); give the pipeline_state.json that "
                        "`aimed-eval pipeline` wrote") from None
    if not isinstance(data, dict) or not isinstance(data.get("lines"), dict):
        raise UserError(f"--pipeline {path}: not a pipeline state file (no 'lines'); give the "
                        "pipeline_state.json that `aimed-eval pipeline` wrote")
    data["_path"] = str(path)
    return data


def _name(path: Optional[str]) -> str:
    if not path:
        return "–"
    p = Path(path)
    return f"{p.parent.name}/{p.name}" if p.name.startswith("checkpoint") else p.name


def _checkpoints(rec: dict, promoted: Optional[str]) -> str:
    parts = []
    for c in rec.get("checkpoints", []):
        mark = " ★" if promoted and c.get("path") == promoted else ""
        state = "" if c.get("passed") is None else " pass" if c["passed"] else " fail"
        gain = "" if c.get("gain") is None else f" {fmt.signed(c['gain'])}"
        parts.append(f"{Path(c['path']).name}{gain}{state}{mark}")
    return ", ".join(parts) or "–"


def _deltas(decision: dict) -> str:
    rows = decision.get("checks") or []
    shown = [r for r in rows if r.get("status") == "fail" or r.get("promotion")] or rows[:3]
    out = []
    for r in shown:
        words = change_words(r.get("delta"), r.get("p_value"), r.get("alpha") or 0.05, r.get("higher_is_better", True))
        out.append(f"{r['task']}/{r['metric']} {fmt.num(r.get('baseline'))} → {fmt.num(r.get('candidate'))}, {words}")
    return "; ".join(out) or "–"


STAGE_HEADER = ["stage", "from", "training", "checkpoints (gain on rank_by, gate)", "promoted", "verdict",
                "deltas judged", "decision"]


def stage_rows(line: dict) -> list[list[str]]:
    rows = []
    for stage, rec in line.get("stages", {}).items():
        d = rec.get("decision")
        if d is None:
            rows.append([stage, rec.get("parent_stage", "–"), "–", _checkpoints(rec, None), "–", "interrupted", "–",
                         "will be redone on the next run"])
            continue
        promoted = d.get("promoted_checkpoint")
        rows.append([stage, rec.get("parent_stage", "–"), str(rec.get("training") or "–"),
                     _checkpoints(rec, promoted), _name(promoted),
                     str(d.get("verdict")), _deltas(d), str(d.get("summary", ""))])
    return rows


def line_title(name: str, line: dict) -> str:
    status = LINE_STATUS.get(line.get("status"), str(line.get("status")))
    return f"{name}: {status}" + (f" — {line['reason']}" if line.get("reason") else "")


def intro(state: dict) -> str:
    return (f"Gate decisions of the pipeline in {state.get('_path')} (stages: {', '.join(state.get('stages', []))}; "
            "updated " + str(state.get("updated", "–")) + "). Each stage starts from the checkpoint promoted before "
            "it; the gate judges every checkpoint of a stage against that parent and promotes the best one that "
            "passes (★), or stops the base model's line. rm is a side stage: it trains the reward model.")
