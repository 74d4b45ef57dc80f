"""Chinese answer extraction from free text (generate mode)."""

import pytest

from aimed.harness.scoring.extract import extract_choice

ABCDE = {k: f"选项{k}的内容" for k in "ABCDE"}
ABCD = {k: f"选项{k}的内容" for k in "ABCD"}
DISEASES = {"A": "出血", "B": "脑出血", "C": "脑梗死", "D": "蛛网膜下腔出血", "E": "偏头痛"}
NONE_OPT = {"A": "维生素A", "B": "维生素C", "C": "以上都不对"}

CASES = [
    # (text, options, multi, expected)
    ("答案：B", ABCDE, False, ("B",)),
    ("答案是 B", ABCDE, False, ("B",)),
    ("答案为C。", ABCDE, False, ("C",)),
    ("正确答案是A、C", ABCDE, True, ("A", "C")),
    ("选C", ABCDE, False, ("C",)),
    ("B. 出血部位", ABCDE, False, ("B",)),
    ("B", ABCDE, False, ("B",)),
    ("Ｂ", ABCDE, False, ("B",)),
    ("答案：Ｄ", ABCDE, False, ("D",)),
    ("答案:E", ABCDE, False, ("E",)),
    ("【答案】AB", ABCDE, True, ("A", "B")),
    ("【答案】Ｃ\n【解析】……", ABCDE, False, ("C",)),
    ("答案是b", ABCDE, False, ("B",)),
    ("答案：acd", ABCDE, True, ("A", "C", "D")),
    ("The answer is C.", ABCDE, False, ("C",)),
    ("答案：A,C和D", ABCDE, True, ("A", "C", "D")),
    ("ACD", ABCDE, True, ("A", "C", "D")),
    ("A、C、D", ABCDE, True, ("A", "C", "D")),
    ("答案是ACD，因为……", ABCDE, True, ("A", "C", "D")),
    ("患者出现意识障碍，结合CT表现，考虑脑出血。因此选D", ABCDE, False, ("D",)),
    ("A选项错误，B选项也不对，所以答案是C。", ABCDE, False, ("C",)),
    ("答案：A。\n解析：……最终答案：B", ABCDE, False, ("B",)),
    ("分析：A项描述的是……，故选E", ABCDE, False, ("E",)),
    ("综上所述，应选择B", ABCDE, False, ("B",)),
    ("不选A，应选B", ABCDE, False, ("B",)),
    ("B项正确", ABCDE, False, ("B",)),
    ("正确的是D", ABCDE, False, ("D",)),
    ("答：C", ABCDE, False, ("C",)),
    # several letters for a single-answer item: ambiguous
    ("答案：AB", ABCDE, False, ()),
    ("答案是A或B", ABCDE, False, ()),
    # letters inside words / terms are not answers
    ("DNA复制需要ATP供能", ABCDE, False, ()),
    ("ATP", ABCDE, False, ()),
    ("DNA", ABCDE, True, ()),
    ("首选B超检查，排查CT异常", ABCDE, False, ()),
    ("患者为A型血，补充维生素B12", ABCDE, False, ()),
    ("ACE抑制剂可降低血压", ABCDE, True, ()),
    ("DNA聚合酶的作用，所以是D", ABCDE, False, ("D",)),
    # letters that are not option keys do not count
    ("答案：E", ABCD, False, ()),
    # option text instead of a letter; the longest text wins
    ("脑出血", DISEASES, False, ("B",)),
    ("答案是蛛网膜下腔出血。", DISEASES, False, ("D",)),
    ("考虑为偏头痛发作", DISEASES, False, ("E",)),
    ("可能是脑出血，也可能是脑梗死", DISEASES, False, ()),  # ambiguous
    ("答案：脑出血、脑梗死", DISEASES, True, ("B", "C")),
    # refusals
    ("抱歉，我无法回答这个问题。", ABCDE, False, ()),
    ("我不能提供医疗建议", ABCDE, False, ()),
    ("无法回答", ABCDE, True, ()),
    ("以上都不对", ABCDE, False, ()),
    ("", ABCDE, False, ()),
    ("Sorry, I cannot answer this.", ABCDE, False, ()),
    # ... unless the phrase is an option
    ("以上都不对", NONE_OPT, False, ("C",)),
    # an enumeration of the options is analysis, not an answer
    ("A. 这一项错误\nB. 这一项也不对\nC. 说法片面", ABCDE, False, ()),
    ("A. 错误\nB. 错误\nC. 正确\n因此答案为C", ABCDE, False, ("C",)),
    # an explicit marker beats a later bare letter
    ("答案：B。A和C的区别在于……", ABCDE, False, ("B",)),
    # the last stated choice when there is no marker
    ("先考虑A，但结合病史应为D", ABCDE, False, ("D",)),
]


@pytest.mark.parametrize("text,options,multi,expected", CASES)
def test_extract_choice(text, options, multi, expected):
    assert extract_choice(text, options, multi) == expected


def test_single_returns_at_most_one_letter():
    for text, options, _, _ in CASES:
        assert len(extract_choice(text, options, False)) <= 1


def test_result_is_sorted_option_keys():
    got = extract_choice("答案：D、A", ABCDE, True)
    assert got == ("A", "D")
