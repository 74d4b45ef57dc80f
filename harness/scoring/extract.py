"""Chinese answer extraction for generate mode: free text -> the chosen option letters.

``extract_choice(text, options, multi)`` normalises the text (NFKC: full-width letters
and colons become ASCII) and tries these rules in order; the first that yields a
result wins:

1. Explicit answer markers — ``答案：B``, ``答案是 B``, ``正确答案是A、C``,
   ``【答案】AB``, ``答：C``, ``正确的是D``, ``The answer is B``. Lower-case letters are
   accepted after the Chinese markers. If several markers occur, the last one wins
   (a model that restates its answer at the end means the restatement).
2. Choice statements — ``选C``, ``因此选D``, ``应选择B``, ``所以是A``, ``B项正确``
   (not ``不选A``). The last one in the text wins (answers come after reasoning).
3. Letters at the very start — ``B. 出血部位``, ``B``, ``ACD``, ``A、C、D`` — unless the
   response enumerates several options line by line (``A. …\\nB. …``), which is analysis.
4. Refusals — ``无法回答``, ``抱歉``, ``我不能``, ``以上都不对`` (unless that phrase is an
   option's text), ... — give ``()``.
5. An option's text right after an answer marker (``答案是：脑出血``).
6. The last bare letter (run) in the text, upper-case only, with non-letter, non-digit
   boundaries (the labels of an enumeration of options do not count, nor runs of adjacent
   letters, which look like abbreviations: ``ACE``) — so ``DNA``, ``ATP``, ``CT``,
   ``B12``, ``ACE抑制剂`` and ``A型血`` are never read as answers.
7. An option's text anywhere in the text (texts of two or more characters).

Option-text matching prefers the longest text: an option whose text is contained in
another matched option's text is dropped (``出血`` vs ``脑出血``). If distinct options
still match, a single-answer item gets ``()`` (ambiguous); a multi-answer item gets all
of them unless every option matched.

Letter runs: ``ACD``, ``A、C、D``, ``A,C和D``, ``A C D``, ``A或B``. Only letters that are
keys of ``options`` count; a letter followed by a verdict (``A选项错误``) ends a run.
For a single-answer item (``multi=False``) a run stating several distinct letters is
ambiguous and gives ``()``; otherwise the result has at most one letter. The result is
always a sorted tuple of option keys.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Optional

REFUSALS = (
    "无法回答", "无法作答", "无法确定", "无法判断", "无法选择", "不能回答", "不能确定",
    "抱歉", "对不起", "我不能", "我无法", "以上都不对", "以上都不是", "以上均不",
    "以上选项都不", "没有正确答案", "都不正确", "sorry", "i cannot", "i can't", "unable to",
)
_TRAILING = " \t\r\n。.;；,，!！"


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


@lru_cache(maxsize=64)
def _patterns(letters: str):
    """Compiled patterns for one set of option letters (upper case, sorted)."""
    up = f"[{re.escape(letters)}]"
    ci = f"[{re.escape(letters + letters.lower())}]"
    sep = r"(?:\s*(?:[、,/&+]|和|及|与|或|以及|and|or)\s*|\s+)"
    # a run ends at a non-letter/digit that is not a verdict on it ("A选项错误") nor a
    # term like A型, B族, B超, T细胞
    end = (r"(?![A-Za-z0-9])(?![型族类超组群细])"
           r"(?!\s*(?:选项|项)?\s*(?:是)?\s*(?:错|不正确|不对|不是|有误|排除))")

    def run(cls: str) -> str:
        return rf"(?<![A-Za-z0-9])(?P<run>{cls}+(?:{sep}{cls}+)*){end}"

    opener = r"[(\[【]?\s*"
    tier1 = [
        rf"答案\s*[】\]]?\s*(?:应该|应当|应|可能|最终)?\s*(?:是|为|选择|选|:)?\s*:?\s*(?:选项|选)?\s*{opener}{run(ci)}",
        rf"(?:^|\n)\s*答\s*:\s*{opener}{run(ci)}",
        rf"正确(?:的)?(?:选项|答案)?\s*(?:应该|应)?\s*(?:是|为|:)\s*(?:选项)?\s*{opener}{run(ci)}",
        rf"(?i:answer)\s*(?:(?i:is)|:|=)?\s*(?:(?i:option))?\s*:?\s*[(\[]?\s*{run(up)}",
    ]
    tier2 = [
        rf"(?<!不)(?<!不应)(?<!不能)(?<!不应该)选(?:择)?\s*(?:选项)?\s*{opener}{run(ci)}",
        rf"(?:因此|所以|故|综上所述|综上|总之)\s*,?\s*(?:本题)?\s*(?:应该|应当|应)?\s*(?:是|为|选择|选)?\s*(?:选项)?\s*{opener}{run(up)}",
        rf"{run(up)}\s*(?:选项|项)?\s*(?:是|为)?\s*(?:正确|对的)(?!率)",
    ]
    tier3 = rf"^\s*(?:选项)?\s*[(\[【]?\s*{run(up)}\s*[)\]】]?(?=\s*$|\s*[.。、,;:)\]】!！]|\s+(?![A-Za-z]))"
    enumerated = rf"(?m)^\s*[(\[【]?({up})\s*[)\]】.、:]"
    marker = r"(?:答案|选择|选|因此|所以|故)\s*(?:[】\]]|应该|应|是|为|:|\s)*"
    return (
        [re.compile(p) for p in tier1],
        [re.compile(p) for p in tier2],
        re.compile(tier3),
        re.compile(enumerated),
        re.compile(marker),
        re.compile(run(up)),
    )


def _last_run(patterns, text: str) -> Optional[str]:
    best = None
    for p in patterns:
        for m in p.finditer(text):
            if best is None or m.start("run") > best.start("run"):
                best = m
    return best.group("run") if best else None


def _finish(letters: list[str], keys: dict[str, str], multi: bool) -> tuple[str, ...]:
    chosen = sorted({keys[c] for c in letters})
    if not multi and len(chosen) > 1:
        return ()  # a single-answer item answered with several letters: ambiguous
    return tuple(chosen)


def _run_letters(run: str, letters: str) -> list[str]:
    return [c.upper() for c in run if c.upper() in letters]


def _match_texts(span: str, options: dict[str, str], min_len: int, multi: bool) -> Optional[tuple[str, ...]]:
    span_l = span.lower()
    texts = {k: _norm(v).strip(_TRAILING).lower() for k, v in options.items()}
    hits = {k: t for k, t in texts.items() if t and len(t) >= min_len and t in span_l}
    if not hits:
        return None
    maximal = {k: t for k, t in hits.items() if not any(t != u and t in u for u in hits.values())}
    if len(maximal) == 1:
        return (next(iter(maximal)),)
    if multi and len(maximal) < len(options):
        return tuple(sorted(maximal))
    return ()  # several options match and cannot be told apart


def extract_choice(text: str, options: dict[str, str], multi: bool) -> tuple[str, ...]:
    """The option letters a free-text answer states (sorted; () for none / a refusal).

    See the module docstring for the order of the rules."""
    keys = {str(k).upper(): k for k in options}
    letters = "".join(sorted(c for c in keys if len(c) == 1 and c.isalpha()))
    text = _norm(text)
    if not letters or not text.strip():
        return ()
    tier1, tier2, leading, enumerated, marker, bare = _patterns(letters)

    for tier in (tier1, tier2):
        run = _last_run(tier, text)
        if run:
            return _finish(_run_letters(run, letters), keys, multi)

    labels = list(enumerated.finditer(text))
    is_enumeration = len({m.group(1) for m in labels}) >= 2
    if not is_enumeration:
        m = leading.match(text)
        if m:
            return _finish(_run_letters(m.group("run"), letters), keys, multi)

    lowered = text.lower()
    option_texts = [_norm(v).lower() for v in options.values()]
    for phrase in REFUSALS:
        if phrase in lowered and not any(phrase in t for t in option_texts):
            return ()

    marks = list(marker.finditer(text))
    if marks:
        span = re.split(r"[。\n;!?！？]", text[marks[-1].end():], maxsplit=1)[0]
        found = _match_texts(span, options, 1, multi)
        if found:
            return tuple(sorted(keys[k.upper()] if k.upper() in keys else k for k in found))

    label_starts = {m.start(1) for m in labels} if is_enumeration else set()
    runs = [r for r in bare.finditer(text)
            if r.start("run") not in label_starts and not re.search(r"[A-Z]{2}", r.group("run"))]
    if runs:
        return _finish(_run_letters(runs[-1].group("run"), letters), keys, multi)

    whole = text.strip(_TRAILING)
    exact = [k for k, v in options.items() if _norm(v).strip(_TRAILING).lower() == whole.lower()]
    if len(exact) == 1:
        return (exact[0],)
    found = _match_texts(text, options, 2, multi)
    return tuple(sorted(found)) if found else ()
