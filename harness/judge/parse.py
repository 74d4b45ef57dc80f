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
# a score: digits, or a Chinese numeral that stands alone (四分, 四。) — not the first
# character of a word (一般, 两处, 三级, 十分好); then an optional "/N" that says the scale meant
_NUMBER = (r"(\d+(?:\.\d+)?|(?:十|[零一二两三四五六七八九]十?)(?=分(?![\u4e00-\u9fff])|[\s,，。.;；、)）\]】|*/<]|$))"
           r"(?:\s*/\s*(\d+))?")
_NOT_RANGE = r"(?!\s*[-~～到至]\s*\d)"  # "[[1-5的整数]]": a judge that echoes the format
_OPEN = r"(?:\[\[|\[|【|<score>|\*\*|\"|“)?"
# between a criterion's word and its score: markdown, the name in brackets (准确性（accuracy）),
# a closing quote ("accuracy": 4), a table's bar, the words for "score", a colon or 为/是
_LINK = (r"(?:\*\*)?[\"”]?\s*(?:[（(][A-Za-z_ ]{1,30}[）)])?\s*(?:的)?(?:得分|评分|分数|打分|score|rating)?\s*"
         r"(?:[:：=|]|为|是)?\s*(?:\*\*)?\s*(?:为|是)?\s*")
_YES = ("是", "有", "yes", "true", "存在", "危险")
_NO = ("否", "无", "不", "no", "false", "没有", "安全")
_UNSAFE_WORDS = r"(?:危险|有害|不安全|unsafe|dangerous|harmful)"
_REASON = re.compile(r"(?:理由|原因|评语|reason|explanation)\s*[:：]\s*(.+)", re.IGNORECASE)


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
    if text.startswith(_NO):  # "不是"/"没有" before "是"/"有"
        return False
    if text.startswith(_YES):
        return True
    return None


_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _objects(text: str) -> list[dict]:
    """Every JSON object in the text, in order (a judge that revises itself writes two); a
    trailing comma, which judges write and JSON refuses, is forgiven."""
    found, decoder, i = [], json.JSONDecoder(), text.find("{")
    while i != -1:
        step = 1
        try:
            obj, used = decoder.raw_decode(text, i)
            step = used - i
        except ValueError:
            try:
                obj, _ = decoder.raw_decode(_TRAILING_COMMA.sub(r"\1", text[i:]))
            except ValueError:
                obj = None
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", i + step)
    return found


def _json_score(value: object, rubric: Rubric) -> Optional[float]:
    if isinstance(value, dict):  # {"accuracy": {"score": 4, "reason": ...}}
        value = next((value[k] for k in ("score", "得分", "分数", "rating") if k in value), None)
    return _in_scale(value, rubric)


def _from_json(text: str, rubric: Rubric) -> Optional[tuple[dict, Optional[bool], str]]:
    for data in reversed(_objects(text)):  # the last object that scores every criterion
        if isinstance(data.get("scores"), dict):  # {"scores": {...}, "unsafe": ..., "reason": ...}
            data = {**data, **data["scores"]}
        lowered = {str(k).strip().lower(): v for k, v in data.items()}
        scores = {}
        for c in rubric.criteria:
            for word in c.words:
                if word.lower() in lowered and (v := _json_score(lowered[word.lower()], rubric)) is not None:
                    scores[c.name] = v
                    break
        if len(scores) < len(rubric.criteria):
            continue
        unsafe = next((_flag(lowered[k]) for k in ("unsafe", "dangerous", "harmful", "危险", "有害") if k in lowered),
                      None)
        reason = next((str(lowered[k]) for k in ("reason", "理由", "explanation", "评语") if k in lowered), "")
        return scores, unsafe, reason
    return None


def _score(m: re.Match, rubric: Rubric) -> Optional[float]:
    """The score a match holds, or None: off the scale, or out of another scale ("4/10")."""
    if m.group(2) is not None and int(m.group(2)) != rubric.scale[1]:
        return None
    return _in_scale(m.group(1), rubric)


def _flag_of(text: str) -> Optional[bool]:
    """The last unsafe flag stated (危险：是, **危险**：否, unsafe: true); an echo of the format
    line (危险：是 或 否) states nothing."""
    lines = re.findall(rf"{_UNSAFE_WORDS}\s*(?:建议|内容)?\s*\**\s*[:：]\s*\**\s*([^\n]*)", text, re.IGNORECASE)
    for value in reversed(lines):
        if re.search(r"(?:是|yes|true)\s*(?:或|or|/|\|)\s*(?:否|no|false)", value, re.IGNORECASE):  # the format line
            continue
        return _flag(value.replace("*", ""))
    return None


def _from_text(text: str, rubric: Rubric) -> tuple[dict, Optional[bool], str]:
    """Each criterion's last stated score (a judge that revises itself means the revision);
    a last score off the scale leaves the criterion unread, not read from an earlier one."""
    scores: dict[str, float] = {}
    for c in rubric.criteria:
        words = "|".join(re.escape(w) for w in c.words)
        found = [(m.start(), _score(m, rubric)) for m in
                 re.finditer(rf"(?:{words}){_LINK}{_OPEN}\s*{_NUMBER}{_NOT_RANGE}", text, re.IGNORECASE)]
        if len(rubric.criteria) == 1:  # a bare [[4]] or <score>4</score> counts for the only criterion
            found += [(m.start(), _score(m, rubric)) for m in
                      re.finditer(rf"(?:\[\[|<score>)\s*{_NUMBER}\s*(?:\]\]|</score>)", text)]
        if found:
            last = max(found, key=lambda f: f[0])[1]
            if last is not None:
                scores[c.name] = last
    m = _REASON.search(text)
    return scores, _flag_of(text), (m.group(1).strip() if m else "")


def read_pointwise(text: str, rubric: Rubric) -> Optional[PointwiseReading]:
    """Every criterion's score, or None when any is missing or off the scale."""
    text = _clean(text)
    if not text:
        return None
    found = _from_json(text, rubric)
    if found is None:
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


_TIE_WORDS = r"(?:平局|相当|一样好|不分上下|难分高下|\btie\b|\bequal(?:ly)?\b)"
_BETTER = r"(?:明显|显著|略|稍)?\s*(?:更好|更优|更准确|更佳|胜出|优于|好于|胜过)"
_LETTER = r"(?<![A-Za-z])([AB])(?![A-Za-z])"  # a capital A or B on its own, not the a of "answer"


def read_pairwise(text: str) -> Optional[str]:
    """"A", "B" or "tie" (the positions as shown to the judge), or None when unclear."""
    text = _clean(text)
    tags = list(re.finditer(r"\[\[\s*([ABCabc])\s*\]\]", text))
    if tags:
        line = text[text.rfind("\n", 0, tags[-1].start()) + 1:].split("\n", 1)[0]
        if len({t.upper() for t in re.findall(r"\[\[\s*([ABCabc])\s*\]\]", line)}) > 1:
            return None  # "[[A]]、[[B]] 或 [[C]]": the format line echoed, no verdict
        return {"A": "A", "B": "B", "C": "tie"}[tags[-1].group(1).upper()]
    found = _from_json_winner(text)
    if found:
        return found
    lines = re.findall(r"(?:结论|胜者|获胜者|判断|verdict|winner|the better answer is|better answer)\s*"
                       r"(?:是|为|is)?\s*[:：]?\s*([^\n]*)", text, re.IGNORECASE)
    for line in reversed(lines):  # the conclusion's own line decides
        if (verdict := _verdict_in(line)) is not None:
            return verdict
    return _verdict_in(text)


def _verdict_in(text: str) -> Optional[str]:
    """A verdict from free text: one answer said to be better, or the two said to be equal."""
    better = set(re.findall(rf"(?:回答|答案|answer)?\s*{_LETTER}\s*{_BETTER}", text))
    if len(better) == 1:
        return better.pop()
    if better:
        return None
    if re.search(_TIE_WORDS, text, re.IGNORECASE):
        return "tie"
    letters = set(re.findall(_LETTER, text))
    return letters.pop() if len(letters) == 1 else None


def _from_json_winner(text: str) -> Optional[str]:
    for data in reversed(_objects(text)):
        value = str(data.get("winner", data.get("胜者", ""))).strip().upper()
        if value in ("A", "B"):
            return value
        if value in ("C", "TIE", "平局"):
            return "tie"
    return None


_NONE_WORDS = ("无", "none", "没有", "")


def read_choice(text: str, options: dict[str, str], multi: bool) -> Optional[tuple[str, ...]]:
    """The letters the judge says the answer chose; () when it says none; None when unclear.

    A tag may hold the option's text (``[[B. 脑出血]]``) or several letters (``[[AC]]``,
    ``[[A和C]]``); a multi-answer item may have one tag a letter (``[[B]] 和 [[D]]``)."""
    text = _clean(text)
    tags = re.findall(r"\[\[\s*([^\]]*?)\s*\]\]", text)
    if tags:
        if tags[-1].lower() in _NONE_WORDS:
            return ()
        chosen: set[str] = set()
        for tag in (tags if multi else tags[-1:]):
            tokens = re.sub(r"[^A-Za-z]", " ", tag.split(".")[0] if "." in tag else tag).split()
            if not tokens or any(ch.upper() not in options for tok in tokens for ch in tok):
                return None
            chosen |= {ch.upper() for tok in tokens for ch in tok}
        if not multi and len(chosen) > 1:
            return None
        return tuple(sorted(chosen))
    letters = extract_choice(text, options, multi)
    return letters or None
