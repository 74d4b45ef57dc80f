"""Chinese answer extraction for generate mode: free text -> the chosen option letters.

``extract_choice(text, options, multi)`` first drops a reasoning trace (``<think>…</think>``,
see ``split_reasoning``), normalises the text (NFKC: full-width letters and colons become
ASCII) and masks negated letters (``不是A``, ``排除A``, ``肯定不是D``, ``A不对``, ``D是错误的``):
they are never read as answers, so ``答案：不是B`` gives no answer and ``不是A，是C`` gives C.
Then it tries these rules in order; the first that yields a result wins:

1. A lone letter, in either case — ``b``, ``b.``, ``（c）``, ``acd`` (the whole answer).
2. Explicit answer markers — ``答案：B``, ``答案是 B``, ``正确答案是A、C``, ``【答案】AB``,
   ``答：C``, ``正确的是D``, ``\\boxed{C}``, ``The answer is B``. Lower-case letters are
   accepted after the Chinese markers. If several markers occur, the last one wins
   (a model that restates its answer at the end means the restatement).
3. An option-by-option verdict list (``A. … 错误\\nB. … 正确``, every labelled line ending
   in a verdict): the options judged correct.
4. Choice statements — ``选C``, ``因此选D``, ``应选择B``, ``所以是A``, ``应该是D``, ``而是C``,
   ``B项正确``. The last one in the text wins (answers come after reasoning).
5. Letters at the very start — ``B. 出血部位``, ``B``, ``ACD``, ``A、C、D`` — unless the
   response enumerates several options line by line (``A. …\\nB. …``), which is analysis.
6. Refusals — ``无法回答``, ``抱歉``, ``我不能``, ``以上都不对`` (unless that phrase is an
   option's text), ... — give ``()``.
7. An option's text right after an answer marker (``答案是：脑出血``).
8. The last bare letter (run) in the text, upper-case only, with non-letter, non-digit
   boundaries (the labels of an enumeration of options do not count, nor runs of adjacent
   letters, which look like abbreviations: ``ACE``) — so ``DNA``, ``ATP``, ``CT``,
   ``B12``, ``ACE抑制剂`` and ``A型血`` are never read as answers — and not glued to the
   Chinese word that follows it (``支气管炎E风险``, ``C反应蛋白``, ``D二聚体``; ``C项`` is fine).
9. An option's text anywhere in the text (texts of two or more characters).

A hedge between letters on a single-answer item (``答案是C，但也可能是D``, ``倾向于选C，不过D
也有可能``) gives ``()``: a grader does not pick one of two stated answers for the model.

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
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_TRAILING = " \t\r\n。.;；,，!！"
# Verdicts that end a line of an option-by-option analysis; the negative ones are tried
# first, since "不正确" ends with "正确".
_WRONG = ("不正确", "不对", "错误的", "错误", "错的", "错", "有误", "不符合", "不选", "×", "✗", "✘")
_RIGHT = ("正确的", "正确", "对的", "对", "符合", "√", "✓", "✔")
_CJK = re.compile(r"[\u3400-\u9fff]")


def split_reasoning(text: str) -> tuple[str, bool]:
    """(the answer part, whether there was a reasoning trace) of a model's output.

    Everything up to the last ``</think>`` is reasoning (the opening tag may sit in the
    prompt, as some chat templates put it there); an opened ``<think>`` that is never
    closed means the model ran out of room before answering: the answer part is what came
    before it (usually nothing)."""
    text = text or ""
    if THINK_CLOSE in text:
        return text[text.rfind(THINK_CLOSE) + len(THINK_CLOSE):], True
    if THINK_OPEN in text:
        return text[:text.find(THINK_OPEN)], True
    return text, False


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


@lru_cache(maxsize=64)
def _patterns(letters: str) -> dict:
    """Compiled patterns for one set of option letters (upper case, sorted)."""
    up = f"[{re.escape(letters)}]"
    ci = f"[{re.escape(letters + letters.lower())}]"
    sep = r"(?:\s*(?:[、,/&+]|和|及|与|或|以及|and|or)\s*|\s+)"
    wrong = r"(?:错|不正确|不对|不是|有误|排除)"
    # a run ends at a non-letter/digit that is not a verdict on it ("A选项错误") nor a
    # term like A型, B族, B超, T细胞
    end = (r"(?![A-Za-z0-9])(?![型族类超组群细])"
           rf"(?!\s*(?:选项|项)?\s*(?:是)?\s*{wrong})")

    def run(cls: str, tail: str = end) -> str:
        return rf"(?<![A-Za-z0-9])(?P<run>{cls}+(?:{sep}{cls}+)*){tail}"

    opener = r"[(\[【]?\s*"
    tier1 = [
        rf"答案\s*[】\]]?\s*(?:应该|应当|应|可能|最终)?\s*(?:是|为|选择|选|:)?\s*:?\s*(?:选项)?\s*{opener}{run(ci)}",
        rf"(?:^|\n)\s*答\s*:\s*{opener}{run(ci)}",
        rf"正确(?:的)?(?:选项|答案)?\s*(?:应该|应)?\s*(?:是|为|:)\s*(?:选项)?\s*{opener}{run(ci)}",
        rf"(?i:answer)\s*(?:(?i:is)|:|=)?\s*(?:(?i:option))?\s*:?\s*[(\[]?\s*{run(up)}",
        rf"(?i:answer)\s*(?:(?i:is)|:)\s*[(\[]?\s*{run(ci)}\s*[)\]]?\s*[.。]?\s*$",
        rf"\\boxed\s*\{{\s*(?:\\text\s*\{{)?\s*{run(ci)}",
    ]
    tier2 = [
        rf"(?<!不)(?<!不应)(?<!不能)(?<!不应该)选(?:择)?\s*(?:选项)?\s*{opener}{run(ci)}",
        rf"(?:因此|所以|故|综上所述|综上|总之)\s*,?\s*(?:本题)?\s*(?:应该|应当|应)?\s*(?:是|为|选择|选)?\s*(?:选项)?\s*{opener}{run(up)}",
        rf"(?:应该|应当|应|而)\s*(?:是|为)\s*(?:选项)?\s*{opener}{run(up)}",
        rf"{run(up)}\s*(?:选项|项)?\s*(?:是|为)?\s*(?:正确|对的)(?!率)",
    ]
    plain = r"(?![A-Za-z0-9])"
    negated = [
        rf"(?:不是|并非|并不是|排除|不选|不应选|不可能是|不会是)\s*(?:选项)?\s*{opener}{run(ci, plain)}",
        rf"{run(up, plain)}\s*(?:选项|项)?\s*(?:也|都|均)?\s*(?:是)?\s*(?:不对|不正确|错误|错的|错|有误|不符合)",
    ]
    hedges = [
        rf"(?:也|还|或者|或|又)\s*(?:有)?\s*可能\s*(?:是|为|选)?\s*(?:选项)?\s*{opener}{run(up)}",
        rf"{run(up)}\s*(?:选项|项)?\s*(?:也|同样)\s*(?:有可能|可能|不能排除|不排除|说得通)",
        rf"(?:或者|或是)\s*(?:选|是)?\s*(?:选项)?\s*{opener}{run(up)}",
    ]
    return {
        "tier1": [re.compile(p) for p in tier1],
        "tier2": [re.compile(p) for p in tier2],
        "negated": [re.compile(p) for p in negated],
        "hedges": [re.compile(p) for p in hedges],
        "lone": re.compile(rf"^\s*[(\[【]?\s*{run(ci, plain)}\s*[)\]】]?\s*[.。、,;:!！]?\s*$"),
        "leading": re.compile(rf"^\s*(?:选项)?\s*[(\[【]?\s*{run(up)}\s*[)\]】]?"
                              r"(?=\s*$|\s*[.。、,;:)\]】!！]|\s+(?![A-Za-z]))"),
        "enumerated": re.compile(rf"(?m)^\s*[(\[【]?({up})\s*[)\]】.、:]"),
        "verdict_line": re.compile(rf"^\s*[(\[【]?\s*({up})(?![A-Za-z0-9])\s*[)\]】]?\s*(?:选项|项)?(.*)$"),
        "marker": re.compile(r"(?:答案|选择|选|因此|所以|故)\s*(?:[】\]]|应该|应|是|为|:|\s)*"),
        "bare": re.compile(run(up)),
    }


def _runs(patterns, text: str, skip: set[int]) -> list[re.Match]:
    return [m for p in patterns for m in p.finditer(text) if m.start("run") not in skip]


def _last_run(patterns, text: str, skip: set[int]) -> Optional[str]:
    found = _runs(patterns, text, skip)
    return max(found, key=lambda m: m.start("run")).group("run") if found else None


def _finish(letters: list[str], keys: dict[str, str], multi: bool) -> tuple[str, ...]:
    chosen = sorted({keys[c] for c in letters})
    if not multi and len(chosen) > 1:
        return ()  # a single-answer item answered with several letters: ambiguous
    return tuple(chosen)


def _run_letters(run: str, letters: str) -> list[str]:
    return [c.upper() for c in run if c.upper() in letters]


def _mask(text: str, patterns) -> str:
    """The text with every negated letter phrase blanked out (same length, so positions hold)."""
    for p in patterns:
        text = p.sub(lambda m: " " * len(m.group(0)), text)
    return text


def _glued(text: str, m: re.Match) -> bool:
    """A letter run followed straight by a Chinese word (``E风险``) is part of a term."""
    rest = text[m.end("run"):]
    return bool(rest and _CJK.match(rest)) and not rest.startswith(("项", "选项"))


def _verdicts(text: str, line_re: re.Pattern) -> Optional[list[str]]:
    """The letters judged correct by an option-by-option verdict list, None when the text is not one."""
    judged: dict[str, bool] = {}
    for line in text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        body = m.group(2).strip(" \t.、:,;!。-—–)")
        verdict = next((False for w in _WRONG if body.endswith(w)), None)
        if verdict is None:
            verdict = next((True for w in _RIGHT if body.endswith(w)), None)
        if verdict is None or m.group(1) in judged:
            return None  # a labelled line without a verdict: an analysis, not a verdict list
        judged[m.group(1)] = verdict
    if len(judged) < 2:
        return None
    return [k for k, ok in judged.items() if ok]


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
    text = _norm(split_reasoning(text)[0])
    if not letters or not text.strip():
        return ()
    pat = _patterns(letters)
    found = _read_letters(text, options, keys, letters, multi, pat)
    if found is None:
        return ()
    if isinstance(found, tuple):  # read from option texts: no letters to hedge between
        return found
    chosen = _finish(found, keys, multi)
    if len(chosen) == 1 and not multi and _hedged(text, chosen[0], letters, pat):
        return ()
    return chosen


def _read_letters(text: str, options: dict[str, str], keys: dict[str, str], letters: str, multi: bool,
                  pat: dict):
    """The stated letters (a list), option keys read from option texts (a tuple), or None."""
    lone = pat["lone"].match(text)
    if lone:
        return _run_letters(lone.group("run"), letters)
    masked = _mask(text, pat["negated"])
    labels = list(pat["enumerated"].finditer(text))
    is_enumeration = len({m.group(1) for m in labels}) >= 2
    label_starts = {m.start(1) for m in labels} if is_enumeration else set()

    run = _last_run(pat["tier1"], masked, label_starts)
    if run:
        return _run_letters(run, letters)
    judged = _verdicts(text, pat["verdict_line"])
    if judged is not None:
        return judged or None
    run = _last_run(pat["tier2"], masked, label_starts)
    if run:
        return _run_letters(run, letters)
    if not is_enumeration:
        m = pat["leading"].match(masked)
        if m:
            return _run_letters(m.group("run"), letters)

    lowered = text.lower()
    option_texts = [_norm(v).lower() for v in options.values()]
    for phrase in REFUSALS:
        if phrase in lowered and not any(phrase in t for t in option_texts):
            return None

    marks = list(pat["marker"].finditer(text))
    if marks:
        span = re.split(r"[。\n;!?！？]", text[marks[-1].end():], maxsplit=1)[0]
        by_text = _match_texts(span, options, 1, multi)
        if by_text:
            return tuple(sorted(keys[k.upper()] if k.upper() in keys else k for k in by_text))

    runs = [r for r in pat["bare"].finditer(masked)
            if r.start("run") not in label_starts and not re.search(r"[A-Z]{2}", r.group("run"))
            and not _glued(masked, r)]
    if runs:
        return _run_letters(runs[-1].group("run"), letters)

    whole = text.strip(_TRAILING)
    exact = [k for k, v in options.items() if _norm(v).strip(_TRAILING).lower() == whole.lower()]
    if len(exact) == 1:
        return (exact[0],)
    by_text = _match_texts(text, options, 2, multi)
    return tuple(sorted(by_text)) if by_text else None


def _hedged(text: str, answer: str, letters: str, pat: dict) -> bool:
    """True when the text also holds another letter up as possibly right (``也可能是D``)."""
    masked = _mask(text, pat["negated"])
    hedges = _runs(pat["hedges"], masked, set())
    if not hedges:
        return False
    stated = {c for m in hedges for c in _run_letters(m.group("run"), letters)}
    stated |= {c for m in _runs(pat["tier1"] + pat["tier2"], masked, set())
               for c in _run_letters(m.group("run"), letters)}
    stated |= {c for m in pat["bare"].finditer(masked) if not _glued(masked, m)
               and not re.search(r"[A-Z]{2}", m.group("run")) for c in _run_letters(m.group("run"), letters)}
    return len(stated | {answer.upper()}) > 1
