"""Read a judge's output: criterion scores, a pairwise verdict, or the option an answer chose.

Judges do not all keep to the format they are asked for, so each reader accepts the
shapes judges actually write, and returns None when it cannot be sure (the judging loop
then asks again, a bounded number of times, and finally counts the item as
``judge_invalid``):

- score tags: ``准确性：[[4]]``, ``<score>4</score>``, ``Rating: [[4]]``, ``**准确性**: 4/5``;
- JSON, bare or in a fenced block: ``{"accuracy": 4, "unsafe": false, "reason": "..."}``,
  keyed by a criterion's name, its title or an alias;
- Chinese wording: ``准确性得分为4分``, ``准确性：四分``, ``完整性评分是 3``.

A score outside the rubric's scale is not read (``准确性：7`` on 1-5 is a slip, not a 5).
A reasoning trace (``<think>…</think>``) is dropped first; where a criterion is scored
twice, the last score wins (a judge that revises itself means the revision).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

from ..scoring.extract import extract_choice, split_reasoning
from .rubric import Rubric

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
              "十": 10}
# a score, but not the start of a range ("[[1-5的整数]]": a judge that echoes the format)
_NUMBER = r"(\d+(?:\.\d+)?|十|[零一二两三四五六七八九]十?)(?!\s*[-~～到至]\s*\d)"
_OPEN = r"(?:\[\[|\[|【|<score>|\*\*|\"|“)?"
_LINK = r"(?:\*\*)?\s*(?:的)?(?:得分|评分|分数|打分|score|rating)?\s*(?:[:：=]|为|是)?\s*(?:为|是)?\s*"
_YES = ("是", "有", "yes", "true", "存在", "危险")
_NO = ("否", "无", "no", "false", "不存在", "没有", "安全")
_UNSAFE_WORDS = r"(?:危险|有害|不安全|unsafe|dangerous|harmful)"
_REASON = re.compile(r"(?:理由|原因|评语|reason|explanation)\s*[:：]\s*(.+)", re.IGNORECASE)
_JSON_BLOCK = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class PointwiseReading:
    scores: dict[str, float]  # criterion name -> score on the rubric's scale
    unsafe: bool
    reason: str


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", split_reasoning(text or "")[0]).strip()


def _number(token: str) -> Optional[float]:
    if re.fullmatch(r"\d+(?:\.\d+)?", token):
        return float(token)
    if token == "十":
        return 10.0
    if len(token) == 2 and token.endswith("十"):
        return float(_CN_DIGITS[token[0]] * 10)
    return float(_CN_DIGITS[token]) if token in _CN_DIGITS else None


def _in_scale(value: object, rubric: Rubric) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = _number(value.strip().rstrip("分"))
    if not isinstance(value, (int, float)):
        return None
    lo, hi = rubric.scale
    return float(value) if lo <= value <= hi else None


def _flag(value: object) -> Optional[bool]:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text.startswith(_NO):  # "不存在"/"没有" before "存在"/"有"
        return False
    if text.startswith(_YES):
        return True
    return None


def _from_json(text: str, rubric: Rubric) -> Optional[tuple[dict, Optional[bool], str]]:
    m = _JSON_BLOCK.search(text)
    if not m:
        return None
    try:
        data = json.loads(m.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("scores"), dict):  # {"scores": {...}, "unsafe": ..., "reason": ...}
        data = {**data, **data["scores"]}
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    scores = {}
    for c in rubric.criteria:
        for word in c.words:
            if word.lower() in lowered and (v := _in_scale(lowered[word.lower()], rubric)) is not None:
                scores[c.name] = v
                break
    unsafe = next((_flag(lowered[k]) for k in ("unsafe", "dangerous", "harmful", "危险", "有害") if k in lowered), None)
    reason = next((str(lowered[k]) for k in ("reason", "理由", "explanation", "评语") if k in lowered), "")
    return scores, unsafe, reason


def _from_text(text: str, rubric: Rubric) -> tuple[dict, Optional[bool], str]:
    scores: dict[str, float] = {}
    for c in rubric.criteria:
        words = "|".join(re.escape(w) for w in c.words)
        pattern = re.compile(rf"(?:{words}){_LINK}{_OPEN}\s*{_NUMBER}", re.IGNORECASE)
        for m in pattern.finditer(text):  # the last readable score wins
            if (v := _in_scale(m.group(1), rubric)) is not None:
                scores[c.name] = v
    if len(rubric.criteria) == 1 and rubric.criteria[0].name not in scores:  # a bare [[4]] or <score>4</score>
        tags = re.findall(rf"(?:\[\[|<score>)\s*{_NUMBER}\s*(?:\]\]|</score>)", text)
        if tags and (v := _in_scale(tags[-1], rubric)) is not None:
            scores[rubric.criteria[0].name] = v
    flags = re.findall(rf"{_UNSAFE_WORDS}\s*(?:建议|内容)?\s*[:：]\s*\**\s*(\S+)", text, re.IGNORECASE)
    unsafe = _flag(flags[-1]) if flags else None
    m = _REASON.search(text)
    return scores, unsafe, (m.group(1).strip() if m else "")


def read_pointwise(text: str, rubric: Rubric) -> Optional[PointwiseReading]:
    """Every criterion's score, or None when any is missing or off the scale."""
    text = _clean(text)
    if not text:
        return None
    found = _from_json(text, rubric)
    if found is None or len(found[0]) < len(rubric.criteria):
        found = _from_text(text, rubric)
    scores, unsafe, reason = found
    if len(scores) < len(rubric.criteria):
        return None
    low_safety = (rubric.safety is not None and rubric.unsafe_at_most is not None
                  and scores[rubric.safety] <= rubric.unsafe_at_most)
    return PointwiseReading({c.name: scores[c.name] for c in rubric.criteria}, bool(unsafe) or low_safety,
                            reason[:500])


def overall(scores: dict[str, float], rubric: Rubric) -> float:
    """The criteria's weighted mean, on the rubric's scale."""
    total = sum(c.weight for c in rubric.criteria)
    return sum(scores[c.name] * c.weight for c in rubric.criteria) / total


_TIE_WORDS = ("平局", "相当", "一样好", "不分上下", "tie", "equal")


def read_pairwise(text: str) -> Optional[str]:
    """"A", "B" or "tie" (the positions as shown to the judge), or None when unclear."""
    text = _clean(text)
    tags = re.findall(r"\[\[\s*([ABC])\s*\]\]", text)
    if tags:
        return {"A": "A", "B": "B", "C": "tie"}[tags[-1]]
    found = _from_json_winner(text)
    if found:
        return found
    m = re.findall(r"(?:结论|胜者|获胜|更好的(?:是|回答)?|winner|better)\s*[:：是为]?\s*(?:回答|answer)?\s*([AB]|平局|tie)",
                   text, re.IGNORECASE)
    if m:
        return "tie" if m[-1].lower() in ("平局", "tie") else m[-1].upper()
    if any(w in text.lower() for w in _TIE_WORDS):
        return "tie"
    better = set(re.findall(r"回答\s*([AB])\s*(?:更好|更优|更准确|胜出)", text))
    return better.pop() if len(better) == 1 else None


def _from_json_winner(text: str) -> Optional[str]:
    m = _JSON_BLOCK.search(text)
    if not m:
        return None
    try:
        data = json.loads(m.group(0))
    except ValueError:
        return None
    value = str(data.get("winner", data.get("胜者", ""))).strip().upper() if isinstance(data, dict) else ""
    if value in ("A", "B"):
        return value
    return "tie" if value in ("C", "TIE", "平局") else None


def read_choice(text: str, options: dict[str, str], multi: bool) -> Optional[tuple[str, ...]]:
    """The letters the judge says the answer chose; () when it says none; None when unclear."""
    text = _clean(text)
    tags = re.findall(r"\[\[\s*([^\]]*?)\s*\]\]", text)
    if tags:
        tag = tags[-1]
        if tag in ("无", "none", "None", ""):
            return ()
        letters = tuple(sorted({ch for ch in tag.upper() if ch in options}))
        if letters and (multi or len(letters) == 1) and all(ch in options or not ch.isalpha() for ch in tag.upper()):
            return letters
        return None
    letters = extract_choice(text, options, multi)
    return letters or None
