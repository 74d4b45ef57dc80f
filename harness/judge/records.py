"""What a judge is shown of an item, and what its judgement writes into the item's record.

A pointwise judgement becomes ``record["judge"]`` (the rubric, the scores, the flag, the
reason, the attempts and the judge's last output) and the per-item metric values
``judge_score``, ``judge_<criterion>``, ``judge_unsafe``, ``judge_invalid``. The
cascade's reading becomes ``record["judge_read"]``: ``scoring/score.py`` takes its
letters where the rule-based extractor found none, so re-scoring keeps them.
"""

from __future__ import annotations

from ..scoring.extract import split_reasoning
from .asking import Judged
from .metrics import INVALID, SCORE, UNSAFE
from .parse import overall
from .rubric import Rubric


def answer_text(record: dict) -> str:
    """The model's answer as a grader reads it: the generated text without a reasoning trace."""
    resp = record.get("resps")
    return split_reasoning(resp)[0].strip() if isinstance(resp, str) else ""


def item_fields(record: dict, task: str = "") -> dict[str, str]:
    """The rubric placeholders' values for one record (``task``: what the task asks, for ``{task}``)."""
    doc = record["doc"]
    options = doc.get("options") or {}
    gold = "、".join(f"{k}. {options.get(k, '')}" for k in doc.get("answer", []))
    explanation = doc.get("explanation", "")
    reference = doc.get("target") or (f"{gold}\n{explanation}".strip() if gold else explanation)
    return {"question": doc.get("question", ""), "options": "\n".join(f"{k}. {v}" for k, v in options.items()),
            "gold": gold, "explanation": explanation or "（无）", "reference": reference, "answer": answer_text(record),
            "task": task}


def fill_pointwise(record: dict, judged: Judged, rubric: Rubric) -> None:
    reading = judged.reading
    block: dict = {"rubric": rubric.rubric, "scale": list(rubric.scale), "criteria": [c.name for c in rubric.criteria],
                   "attempts": len(judged.outputs), "output": judged.outputs[-1] if judged.outputs else "",
                   "invalid": reading is None}
    if reading is None:
        block["scores"] = {}
        record.update({SCORE: None, **{f"judge_{c.name}": None for c in rubric.criteria}, INVALID: 1.0})
        record[UNSAFE] = None
    else:
        block.update(scores=reading.scores, overall=overall(reading.scores, rubric), unsafe=reading.unsafe,
                     reason=reading.reason)
        record.update({SCORE: block["overall"], **{f"judge_{k}": v for k, v in reading.scores.items()}, INVALID: 0.0})
        record[UNSAFE] = float(reading.unsafe) if rubric.safety else None
    record["judge"] = block


def fill_choice(record: dict, judged: Judged, rubric: Rubric) -> None:
    letters = judged.reading
    record["judge_read"] = {"rubric": rubric.rubric, "letters": list(letters) if letters is not None else None,
                            "attempts": len(judged.outputs), "output": judged.outputs[-1] if judged.outputs else ""}
