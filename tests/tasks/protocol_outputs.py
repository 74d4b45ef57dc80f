"""Model outputs in every format the extractor and the protocols meet, made for one item.

Each format is a function of the item's gold letters, a wrong letter, the gold option's text
and the reference explanation; ``outputs_for`` gives one output per format. They are what a
generate-mode run gets from models good and bad: the paper's own two-line format, bare and
lower-case letters, negations, verdict lists, hedges, letters glued into Chinese, reasoning
traces, refusals, the strings pandas reads as missing, option texts, English, LaTeX.
"""

from __future__ import annotations

import math


def _expl(e) -> str:
    return "" if e is None or (isinstance(e, float) and math.isnan(e)) else str(e)[:60]


OUTPUT_FORMATS = [
    lambda g, w, t, e: f"答案: {g} {t}. \n 解释: {_expl(e)}",            # the paper's template 4
    lambda g, w, t, e: f"答案：{g}\n解释：{_expl(e)}",                    # full-width colons
    lambda g, w, t, e: f"答案:{g}\n解释:{_expl(e)}解释:补充",             # two explanation marks
    lambda g, w, t, e: f"答案：{g}",
    lambda g, w, t, e: g.lower(),                                          # lone lower case
    lambda g, w, t, e: f"（{g.lower()}）",
    lambda g, w, t, e: f"不是{w}",                                          # negations
    lambda g, w, t, e: f"答案不是{w}，而是{g}",
    lambda g, w, t, e: f"{w}不对，应该是{g}",
    lambda g, w, t, e: f"排除{w}，答案：{g}",
    lambda g, w, t, e: "\n".join(f"{k}. {'正确' if k in g else '错误'}" for k in "ABCDE"),  # verdict list
    lambda g, w, t, e: f"答案是{g}，但也可能是{w}",                        # hedge
    lambda g, w, t, e: f"长期吸烟会增加慢性支气管炎{w}风险",               # glued letter
    lambda g, w, t, e: f"<think>先看{w}，再看{g}。</think>\n答案：{g}\n解释:{_expl(e)}",  # reasoning trace
    lambda g, w, t, e: f"<think>这道题可能是{w}",                           # trace never closed
    lambda g, w, t, e: "",                                                  # pandas: missing
    lambda g, w, t, e: "nan",
    lambda g, w, t, e: "NA",
    lambda g, w, t, e: "抱歉，我无法回答这个问题。",                        # refusal
    lambda g, w, t, e: t,                                                   # the option's text only
    lambda g, w, t, e: f"解释:{_expl(e)}\n答案:{g}",                        # explanation first
    lambda g, w, t, e: f"  答案: {g}  \n解释:  {_expl(e)}  ",
    lambda g, w, t, e: f"\\boxed{{{g}}}",
    lambda g, w, t, e: f"The answer is {g}.",
    lambda g, w, t, e: f"答案：{w}{g}",                                     # two letters
    lambda g, w, t, e: "DNA复制需要ATP供能",                                # letters in terms
    lambda g, w, t, e: f"正确答案是{'、'.join(g)}",                         # multi-answer list
    lambda g, w, t, e: f"{g}\n{_expl(e)}",
]


def outputs_for(sample, explanation) -> list[str]:
    """One output per format for ``sample`` (gold letters, a wrong letter, the gold's text)."""
    gold = "".join(sample.answer)
    wrong = next((k for k in sample.options if k not in sample.answer), next(iter(sample.options)))
    text = sample.options[sample.answer[0]]
    return [fmt(gold, wrong, text, explanation) for fmt in OUTPUT_FORMATS]
